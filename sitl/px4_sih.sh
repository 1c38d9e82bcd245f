#!/usr/bin/env bash
# Launch N instances of real PX4 SITL with the SIH quadrotor (no Gazebo) from a user's PX4 build,
# on the same ports as `dronedispatch sitl`: instance i is system id i+1, GCS link 18570+i -> 14550,
# API/offboard link 14580+i -> 14540+i (PX4's own defaults for `px4 -i <i>`).
#
#   PX4_BUILD_DIR=~/PX4-Autopilot/build/px4_sitl_default sitl/px4_sih.sh [-n N] [--home LAT,LON,ALT]
#                                                                       [--speed-factor K] [--logdir DIR]
#
# Runs until Ctrl-C, then stops exactly the processes it started. Exit status 2 when PX4_BUILD_DIR
# does not hold a PX4 SITL build (tests use that to skip).
set -euo pipefail

n=1
home="37.3918,126.6393,5"
speed=1
logdir="${PX4_SIH_LOGDIR:-var/px4-sih}"

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    -n|--vehicles) n="$2"; shift 2 ;;
    --home) home="$2"; shift 2 ;;
    --speed-factor) speed="$2"; shift 2 ;;
    --logdir) logdir="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "px4_sih.sh: unknown argument $1" >&2; usage >&2; exit 64 ;;
  esac
done

if [[ -z "${PX4_BUILD_DIR:-}" ]]; then
  echo "px4_sih.sh: set PX4_BUILD_DIR to a PX4 SITL build (e.g. PX4-Autopilot/build/px4_sitl_default)" >&2
  exit 2
fi
px4="$PX4_BUILD_DIR/bin/px4"
etc="$PX4_BUILD_DIR/etc"
if [[ ! -x "$px4" || ! -d "$etc" ]]; then
  echo "px4_sih.sh: no PX4 SITL build at $PX4_BUILD_DIR (need bin/px4 and etc/; run 'make px4_sitl' first)" >&2
  exit 2
fi
if ! [[ "$n" =~ ^[0-9]+$ ]] || (( n < 1 || n > 250 )); then
  echo "px4_sih.sh: -n wants 1..250, got $n" >&2
  exit 64
fi
IFS=, read -r lat lon alt <<<"$home"
alt="${alt:-0}"

mkdir -p "$logdir"
logdir="$(cd "$logdir" && pwd)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

for ((i = 0; i < n; i++)); do
  work="$logdir/$i"
  mkdir -p "$work"
  (
    cd "$work"
    # PX4 reads these at start-up; HOME is shared by all instances (PX4 has no per-instance home).
    PX4_SIMULATOR=sihsim PX4_SIM_MODEL=sihsim_quadx \
      PX4_HOME_LAT="$lat" PX4_HOME_LON="$lon" PX4_HOME_ALT="$alt" PX4_SIM_SPEED_FACTOR="$speed" \
      exec "$px4" -i "$i" -d "$etc" >"$work/px4.log" 2>&1 </dev/null
  ) &
  pids+=("$!")
  echo "PX4 SIH instance $i: sysid $((i + 1)), GCS 127.0.0.1:$((18570 + i)) -> 14550," \
       "API 127.0.0.1:$((14580 + i)) -> $((14540 + i)), log $work/px4.log"
done
echo "$n PX4 SIH instance(s) running; Ctrl-C to stop"
wait
