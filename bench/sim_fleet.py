"""Simulator capacity: N vehicles at PX4's GCS-link rates in real time on one core.

The fleet runs in a child process pinned to one CPU; the parent receives every datagram on the
GCS port and counts MAVLink frames. Printed: the achieved real-time factor (simulated seconds per
wall second), the child's CPU use as a fraction of one core, the received message rate against
the PX4 target (N × ~365 msg/s), and — as the peer measured in the same run — what framing the
same traffic with pymavlink's ``message.pack`` would cost compared with the simulator's encoder.

    .venv/bin/python bench/sim_fleet.py [--vehicles 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dronedispatch.domain.fleet import Dock, FleetConfig
from dronedispatch.sim import telemetry, wire

PX4_GCS_RATE = 365.0  # messages per second per vehicle on PX4's GCS link (px4-wire-facts.md)


def _fleet(n: int) -> FleetConfig:
    docks = [Dock(id=f"d{k}", name_ko="d", name_en="d", lat=37.39 + 0.01 * k, lon=126.63, alt=5.0) for k in range(4)]
    return FleetConfig(city="bench", docks=docks).sized(n)


async def _child(n: int, seconds: float, gcs_port: int, vehicle_base: int, warmup: float) -> dict[str, float]:
    from dronedispatch.sim.runner import SimFleet

    sim = SimFleet(_fleet(n), gcs_port=gcs_port, vehicle_port_base=vehicle_base, api_port_base=None)
    async with sim:
        await asyncio.sleep(warmup)
        t0, c0, s0, k0, o0 = time.monotonic(), time.process_time(), sim.vehicles[0].time_s, sim.ticks, sim.overruns
        await asyncio.sleep(seconds)
        t1, c1, s1, k1, o1 = time.monotonic(), time.process_time(), sim.vehicles[0].time_s, sim.ticks, sim.overruns
    return {"wall": t1 - t0, "cpu": c1 - c0, "sim": s1 - s0, "ticks": k1 - k0, "overruns": o1 - o0}


def _count_frames(data: bytes) -> int:
    i, n, size = 0, 0, len(data)
    while i < size:
        if data[i] == 0xFD and i + 1 < size:
            i += 12 + data[i + 1] + (13 if i + 2 < size and data[i + 2] & 1 else 0)
            n += 1
        elif data[i] == 0xFE and i + 1 < size:
            i += 8 + data[i + 1]
            n += 1
        else:
            i += 1
    return n


class _Receiver(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.frames = 0
        self.datagrams = 0
        self.window: tuple[float, float] | None = None
        self.in_window = 0
        self.stop = False

    def run(self) -> None:
        while not self.stop:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            k = _count_frames(data)
            self.frames += k
            self.datagrams += 1
            w = self.window
            if w is not None and w[0] <= time.monotonic() <= w[1]:
                self.in_window += k


def _free_block(n: int) -> int:
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
        s.close()
        if base + n < 65000:
            try:
                socks = []
                for k in range(n):
                    t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    socks.append(t)
                    t.bind(("127.0.0.1", base + k))
                return base
            except OSError:
                continue
            finally:
                for t in socks:
                    t.close()
    raise RuntimeError("no free port block")


def _encode_peer(samples: int = 20000) -> tuple[float, float]:
    """Microseconds per message: the simulator's encoder vs pymavlink's pack, on the same mix."""
    from dronedispatch.sim.model import VehicleModel

    m = VehicleModel(1, (37.39, 126.63, 5.0))
    names = [n for n, r in telemetry.GCS_STREAMS.items() if n in telemetry.BUILDERS and r >= 1]
    built = [telemetry.BUILDERS[n](m) for n in names]
    enc = wire.LinkEncoder(1)
    t0 = time.perf_counter()
    for i in range(samples):
        spec, values = built[i % len(built)]
        enc.fast(spec, values)
    fast = (time.perf_counter() - t0) / samples * 1e6
    from pymavlink.dialects.v20 import common as mavlink

    mav = mavlink.MAVLink(None, 1, 1)
    objs = []
    for spec, values in built:
        cls = mavlink.mavlink_map[spec.msgid]
        obj = cls.__new__(cls)
        cls.__init__(obj, *[0] * len(cls.fieldnames))
        for name, v in zip(cls.ordered_fieldnames, _unflatten(cls, values), strict=False):
            setattr(obj, name, v)
        objs.append(obj)
    t0 = time.perf_counter()
    for i in range(samples):
        objs[i % len(objs)].pack(mav)
    slow = (time.perf_counter() - t0) / samples * 1e6
    return fast, slow


def _unflatten(cls: Any, values: tuple) -> list:
    out, i = [], 0
    for name, n in zip(cls.ordered_fieldnames, cls.array_lengths, strict=False):
        if n:
            out.append(list(values[i:i + n]))
            i += n
        else:
            out.append(values[i])
            i += 1
        _ = name
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vehicles", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--child", nargs=3, type=int, metavar=("GCS_PORT", "VEHICLE_BASE", "CPU"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        gcs_port, vehicle_base, cpu = args.child
        os.sched_setaffinity(0, {cpu})
        result = asyncio.run(_child(args.vehicles, args.seconds, gcs_port, vehicle_base, args.warmup))
        print(json.dumps(result))
        return 0

    rx = _Receiver()
    rx.start()
    base = _free_block(args.vehicles)
    cpu = sorted(os.sched_getaffinity(0))[-1]
    start = time.monotonic()
    rx.window = (start + args.warmup + 0.5, start + args.warmup + args.seconds - 0.5)
    proc = subprocess.run(
        [sys.executable, __file__, "--vehicles", str(args.vehicles), "--seconds", str(args.seconds), "--warmup",
         str(args.warmup), "--child", str(rx.port), str(base), str(cpu)],
        capture_output=True, text=True, check=False,
    )
    rx.stop = True
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return 1
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    window = rx.window[1] - rx.window[0]
    rate = rx.in_window / window
    target = args.vehicles * PX4_GCS_RATE
    rtf = r["sim"] / r["wall"]
    cpu_frac = r["cpu"] / r["wall"]
    fast_us, slow_us = _encode_peer()
    print(f"simulator: {args.vehicles} vehicles, GCS link only, {r['wall']:.1f} s measured on CPU {cpu}")
    print(f"  real-time factor      {rtf:.3f}  (1.0 = real time; ticks {r['ticks']}, late ticks {r['overruns']})")
    per_tick_ms = r["cpu"] / max(r["ticks"], 1) * 1000
    need = per_tick_ms * 50 / 1000  # 50 ticks per second at full rate
    print(f"  CPU use               {cpu_frac * 100:.0f}% of one core; {per_tick_ms:.2f} ms CPU per tick "
          f"→ {need * 100:.0f}% of a core at the full 50 ticks/s")
    print(f"  host load average     {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (a busy host delays ticks)")
    print(f"  messages received     {rate:,.0f}/s  = {rate / target:.2f} × PX4 target ({target:,.0f}/s)")
    print(f"  per vehicle           {rate / args.vehicles:.0f} msg/s (PX4 GCS link ~{PX4_GCS_RATE:.0f})")
    print(f"  encode per message    {fast_us:.2f} µs here vs {slow_us:.2f} µs pymavlink pack "
          f"(ratio {fast_us / slow_us:.2f}; pymavlink would need {slow_us * target / 1e6 * 100:.0f}% of a core "
          f"for framing alone)")
    if rtf >= 0.98 and rate / target >= 0.95:
        verdict = f"meets the target: {args.vehicles} vehicles at PX4 rates in real time on one core (measured)"
    elif need < 1.0:
        verdict = (f"fits one core by CPU per tick (projected {need:.2f} of a core), but this busy host gave the "
                   f"process {cpu_frac:.2f} of a core, so only {rate / target:.2f} × the PX4 rate was measured")
    else:
        verdict = f"misses: {need:.2f} cores needed for {args.vehicles} vehicles at 50 ticks/s"
    print(f"  verdict: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
