"""The simulated PX4 multicopter: kinematics, flight modes, mission executor, battery, failsafes.

Pure: :meth:`VehicleModel.step` takes a time step in simulated seconds, commands come in as method
calls, and what the vehicle says (STATUSTEXT, MISSION_ITEM_REACHED) is queued in :attr:`texts` and
:attr:`reached` for the MAVLink shell to send. No sockets, no clocks.

Theory of operation: the flight mode picks a *guidance* each step (hold a point, fly to a point,
take off, land, orbit, fall); guidance turns into a velocity set-point that respects the cruise,
climb and descent speeds and the horizontal acceleration limit; the velocity is integrated on the
ellipsoid (:mod:`.geodesy`). The mission executor is a small interpreter over the stored items,
advancing on "reached" the way PX4's navigator does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from dronedispatch.domain.mission_items import Cmd, MissionItem
from dronedispatch.sim import failsafe, mission_exec
from dronedispatch.sim.failsafe import DRAIN_IDLE
from dronedispatch.sim.geodesy import move_ne, offset_ne
from dronedispatch.sim.mission_server import MissionStore
from dronedispatch.sim.modes import (  # re-exported: the shell and tests read them from here
    IN_AIR,
    LANDING,
    MODES,
    MS_ACTIVE,
    MS_COMPLETE,
    MS_NONE,
    MS_NOT_STARTED,
    MS_PAUSED,
    ON_GROUND,
    TAKEOFF,
    G,
)
from dronedispatch.sim.params import Params

BOOT_READY_S = 4.0  # pre-arm checks pass this long after boot, as PX4 SITL does


class VehicleModel:
    """One simulated PX4 quadrotor. Positions are WGS84 degrees; ``alt_rel`` is metres above home."""

    def __init__(
        self,
        sysid: int,
        home: tuple[float, float, float],
        *,
        cruise_speed: float = 5.0,
        climb_speed: float | None = None,
        endurance_min: float = 35.0,
        params: dict[str, float] | None = None,
    ) -> None:
        self.sysid = sysid
        # A fleet file's drone spec sets cruise and climb (take-off) speeds; otherwise PX4's defaults.
        climb = {"MPC_Z_V_AUTO_UP": climb_speed, "MPC_TKO_SPEED": climb_speed} if climb_speed else {}
        self.params = Params({"MPC_XY_CRUISE": cruise_speed, "MAV_SYS_ID": sysid, **climb,
                              "MPC_XY_VEL_MAX": max(12.0, cruise_speed * 1.25), **(params or {})})
        self.home = home  # lat, lon, AMSL metres
        self.lat, self.lon, self.alt_rel = home[0], home[1], 0.0
        self.vn = self.ve = self.vd = 0.0  # ground velocity NED, m/s
        self.heading = 0.0  # radians, 0 = north
        self.yaw_rate = 0.0
        self.roll = self.pitch = 0.0
        self.airspeed = 0.0
        self.t = 0.0  # simulated seconds since the simulation began
        self.boot_at = 0.0  # simulated time of the autopilot's last (re)boot: time_boot_ms counts from here
        self.armed = False
        self.mode = "AUTO.LOITER"
        self.landed_state = ON_GROUND
        self.battery = 1.0  # remaining fraction
        self.endurance_s = endurance_min * 60.0
        self.current_a = 0.0
        self.store = MissionStore()
        self.store.on_change = self._plan_changed
        self.seq = 0
        self.mission_state = MS_NONE
        self.roi: tuple[float, float, float] | None = None
        self.texts: list[tuple[int, str]] = []
        self.reached: list[int] = []
        # faults
        self.gps_lost = False
        self.motor_failed = False
        self.wind = (0.0, 0.0)  # speed m/s, direction it blows FROM, degrees
        # internals
        self._hold: tuple[float, float, float] | None = None
        self._target: tuple[float, float, float] | None = None
        self._speed_override: float | None = None
        self._item_phase = ""
        self._item_timer = 0.0
        self._jumps: dict[int, int] = {}
        self._needs_takeoff = False
        self._takeoff_alt = 0.0
        self._rtl_phase = ""
        self._rtl_dest: tuple[float, float] = (home[0], home[1])
        self._rtl_timer = 0.0
        self._landed_at: float | None = 0.0
        self._armed_at = 0.0
        self._flew = False
        self._orbit: tuple[float, float, float, float, float] | None = None  # lat, lon, alt, radius, speed
        self._orbit_angle = 0.0
        self._bat_level = 0  # 0 ok, 1 low, 2 critical, 3 emergency: actions taken so far
        self._fence_breached = False
        self._gcs_seen: float | None = None
        self.dll_floor_s = 0.0  # shell-imposed minimum link-loss time (see runner)
        self._dll = False
        # why arming is physically impossible now (a simulated dock's closed door), or None; set by sim/docks.py
        self.arm_interlock: Callable[[], str | None] | None = None

    # -- derived state ---------------------------------------------------------------------------------
    @property
    def custom_mode(self) -> int:
        main, sub = MODES[self.mode]
        return (main << 16) | (sub << 24)

    @property
    def base_mode(self) -> int:
        # CUSTOM_MODE_ENABLED | AUTO | GUIDED | STABILIZE (29), + SAFETY_ARMED (128) when armed
        return 157 if self.armed else 29

    @property
    def system_status(self) -> int:
        if self.motor_failed and not self.landed:
            return 6  # MAV_STATE_EMERGENCY
        if self.armed:
            return 4  # ACTIVE
        return 3 if self.t >= 3.0 else 0  # STANDBY after boot

    @property
    def landed(self) -> bool:
        return self.landed_state == ON_GROUND

    @property
    def alt_amsl(self) -> float:
        return self.home[2] + self.alt_rel

    @property
    def items(self) -> list[MissionItem]:
        return self.store.plans[0]

    @property
    def cruise(self) -> float:
        return self._speed_override or self.params["MPC_XY_CRUISE"]

    @property
    def groundspeed(self) -> float:
        return math.hypot(self.vn, self.ve)

    @property
    def prearm_ok(self) -> tuple[bool, str]:
        if self.t < BOOT_READY_S:
            return False, "Arming denied: Resolve system health failures first"
        if self.gps_lost:
            return False, "Arming denied: GPS fix too low"
        if self.motor_failed:
            return False, "Arming denied: motor failure"
        if self.battery <= self.params["BAT_LOW_THR"]:
            return False, "Arming denied: low battery"
        return True, ""

    def interlock_reason(self) -> str | None:
        """Why arming is physically impossible now (e.g. "dock door closed"), or None."""
        return self.arm_interlock() if self.arm_interlock is not None else None

    @property
    def target(self) -> tuple[float, float] | None:
        """Where the camera should look: ROI, orbit centre, or the loiter point of the current item."""
        if self.roi is not None:
            return self.roi[0], self.roi[1]
        if self._orbit is not None and self.mode == "ORBIT":
            return self._orbit[0], self._orbit[1]
        if self.mode == "AUTO.MISSION" and self.seq < len(self.items):
            it = self.items[self.seq]
            if it.command in (Cmd.NAV_LOITER_UNLIM, Cmd.NAV_LOITER_TIME, Cmd.NAV_LOITER_TURNS):
                return it.lat, it.lon
        return None

    # -- commands --------------------------------------------------------------------------------------
    def say(self, severity: int, text: str) -> None:
        self.texts.append((severity, text))

    def arm(self, force: bool = False) -> tuple[bool, str]:
        if self.armed:
            return True, ""
        if (blocked := self.interlock_reason()) is not None:  # not a check that force overrides: a door
            self.say(2, f"Arming denied: {blocked}")
            return False, blocked
        ok, why = self.prearm_ok
        if not ok and not force:
            self.say(2, why)
            return False, why
        if self.mode in ("OFFBOARD",):
            self.say(2, "Arming denied: no offboard signal")
            return False, "no offboard signal"
        self.armed = True
        self._armed_at = self.t
        self._flew = False
        self._landed_at = self.t if self.landed else None
        self._on_mode_enter(self.mode)
        return True, ""

    def disarm(self, force: bool = False) -> tuple[bool, str]:
        if not self.armed:
            return True, ""
        if not self.landed and not force:
            self.say(4, "Disarming denied: not landed")
            return False, "not landed"
        self._do_disarm("Disarmed by external command")
        return True, ""

    def _do_disarm(self, why: str) -> None:
        self.armed = False
        self.say(6, why)
        if self.mode == "AUTO.TAKEOFF":
            self.mode = "AUTO.LOITER"

    def set_mode(self, name: str) -> tuple[bool, str]:
        if name not in MODES:
            return False, "unknown mode"
        if name == self.mode:
            return True, ""
        if name in ("OFFBOARD", "AUTO.READY"):
            self.say(3, f"Switching to {name} is currently not available")
            return False, "mode not available"
        if name == "AUTO.MISSION" and not self.items:
            self.say(3, "Switching to Mission is currently not available")
            return False, "no mission"
        if name == "ORBIT":
            return False, "use DO_ORBIT"
        if name == "AUTO.TAKEOFF":  # a mode switch (not NAV_TAKEOFF) climbs to MIS_TAKEOFF_ALT
            self._takeoff_alt = max(self.params["MIS_TAKEOFF_ALT"], 0.0 if self.landed else self.alt_rel)
        self.mode = name
        self._on_mode_enter(name)
        return True, ""

    def _on_mode_enter(self, name: str) -> None:
        # hold where a braking vehicle comes to rest, as PX4's hold does, not where the switch happened
        speed = self.groundspeed
        brake = speed * speed / (2.0 * self.params["MPC_ACC_HOR"]) if speed > 0.1 else 0.0
        lat, lon = move_ne(self.lat, self.lon, self.vn / speed * brake, self.ve / speed * brake) if brake else (
            self.lat, self.lon)
        self._hold = (lat, lon, self.alt_rel)
        if name == "AUTO.MISSION":
            if self.mission_state == MS_COMPLETE or self.seq >= len(self.items):
                self.seq = 0
                self._jumps.clear()
            self._item_phase = ""
            if self.armed and self.landed:
                self._needs_takeoff = True
        elif name == "AUTO.RTL":
            self._rtl_start()
        if name in ("AUTO.RTL", "AUTO.LAND"):
            # a take-off still pending is abandoned: the vehicle goes home or down, and one that never
            # got up disarms on the ground as PX4 does (else it would sit armed, waiting to climb)
            self._needs_takeoff = False
        if name != "AUTO.MISSION" and self.mission_state == MS_ACTIVE:
            self.mission_state = MS_PAUSED

    def takeoff(self, alt_rel: float | None) -> tuple[bool, str]:
        if self.gps_lost or self.motor_failed:
            return False, "not ready"
        self._takeoff_alt = alt_rel if alt_rel is not None else self.params["MIS_TAKEOFF_ALT"]
        self.mode = "AUTO.TAKEOFF"
        self._hold = (self.lat, self.lon, self.alt_rel)
        return True, ""

    def start_mission(self, first: int = 0) -> tuple[bool, str]:
        if not self.items:
            self.say(3, "Mission start denied: no mission")
            return False, "no mission"
        if not 0 <= first < len(self.items):
            return False, "first item out of range"
        if not self.armed:
            ok, why = self.arm()
            if not ok:
                return False, why
            self.say(6, "Armed by mission start")
        self.seq = first
        self._jumps.clear()
        self.mission_state = MS_NOT_STARTED
        self.mode = "AUTO.MISSION"
        self._on_mode_enter("AUTO.MISSION")
        return True, ""

    def set_current(self, seq: int) -> bool:
        if not 0 <= seq < len(self.items):
            return False
        self.seq = seq
        self._item_phase = ""
        if self.mission_state == MS_COMPLETE:
            self.mission_state = MS_NOT_STARTED
        return True

    def reposition(self, lat: float, lon: float, alt_rel: float, speed: float | None) -> tuple[bool, str]:
        if not self.armed:
            return False, "not armed"
        if self.gps_lost:
            return False, "no position"
        self.mode = "AUTO.LOITER"
        self._hold = (lat, lon, alt_rel)
        if speed and speed > 0:
            self._speed_override = speed
        if self.landed:
            self._needs_takeoff = True
            self._takeoff_alt = max(alt_rel, self.params["MIS_TAKEOFF_ALT"])
        return True, ""

    def orbit(self, lat: float, lon: float, alt_rel: float, radius: float, speed: float) -> tuple[bool, str]:
        if not self.armed or self.landed:
            return False, "not flying"
        if not 1.0 <= abs(radius) <= 100.0:
            self.say(3, "Orbit radius out of range (1-100 m)")
            return False, "radius out of range"
        self._orbit = (lat, lon, alt_rel, abs(radius), speed if speed else 1.0)
        dn, de = offset_ne(lat, lon, self.lat, self.lon)
        self._orbit_angle = math.atan2(de, dn)
        self.mode = "ORBIT"
        return True, ""

    def change_speed(self, speed: float) -> None:
        if speed > 0:
            self._speed_override = min(speed, self.params["MPC_XY_VEL_MAX"])
        elif speed == -2 or speed == 0:
            self._speed_override = None

    def note_gcs_heartbeat(self) -> None:
        self._gcs_seen = self.t
        if self._dll:
            self._dll = False
            self.say(6, "Data link regained")

    def _plan_changed(self, mission_type: int) -> None:
        if mission_type == 0:
            self.seq = 0
            self._jumps.clear()
            self._item_phase = ""
            self.mission_state = MS_NOT_STARTED if self.items else MS_NONE
            if self.mode == "AUTO.MISSION" and self.armed and not self.items:
                self.mode = "AUTO.LOITER"
                self._hold = (self.lat, self.lon, self.alt_rel)

    # -- faults ----------------------------------------------------------------------------------------
    def reboot(self, *, clear_mission: bool) -> None:
        """The autopilot restarts (a brown-out, a watchdog) while the airframe flies on: its clock starts
        again from zero and it holds where it is; its plan survives (kept on the SD card) or is gone."""
        self.boot_at = self.t
        if clear_mission:
            self.store.replace(0, [])
        self.seq = 0
        self._jumps.clear()
        self._item_phase = ""
        self.mission_state = MS_NOT_STARTED if self.items else MS_NONE
        if self.armed:
            self.mode = "AUTO.LOITER"
            self._hold = (self.lat, self.lon, self.alt_rel)
        self.texts.append((6, "[px4] autopilot restarted"))

    def motor_failure(self) -> None:
        self.motor_failed = True
        if self.armed and not self.landed:
            self.say(0, "Motor failure detected: emergency landing")
            self.mode = "AUTO.LAND"

    def set_gps_loss(self, on: bool) -> None:
        was, self.gps_lost = self.gps_lost, on
        if on and not was:
            self.say(2, "GPS lost")
            if self.armed and not self.landed:
                self.say(1, "Failsafe: no position estimate, landing")
                self.mode = "AUTO.LAND"
        elif was and not on:
            self.say(6, "GPS fix regained")

    def set_battery(self, remaining_fraction: float) -> None:
        self.battery = min(max(remaining_fraction, 0.0), 1.0)

    # -- simulation ------------------------------------------------------------------------------------
    def step(self, dt: float) -> None:
        self.t += dt
        if not self.armed:
            if not self.landed:
                self._fall(dt)
            else:
                self.vn = self.ve = self.vd = 0.0
                self.roll = self.pitch = self.yaw_rate = 0.0
                self.airspeed = 0.0
            failsafe.battery_step(self, dt, 0.0)
            if self.landed:
                failsafe.dock_charge(self, dt)
            return
        self._fly(dt)
        failsafe.battery_step(self, dt, DRAIN_IDLE if self.landed else failsafe.drain_factor(self))
        failsafe.check(self)
        if self.armed and self.landed and self._landed_at is not None and not self._wants_climb():
            # PX4: COM_DISARM_PRFLT if it never took off since arming, COM_DISARM_LAND after a landing
            limit = self.params["COM_DISARM_LAND"] if self._flew else self.params["COM_DISARM_PRFLT"]
            if 0 < limit <= self.t - self._landed_at:
                self._do_disarm("Disarmed by landing" if self._flew else "Disarmed by auto preflight disarming")

    def _wants_climb(self) -> bool:
        return self._needs_takeoff or (self.mode == "AUTO.TAKEOFF" and self._takeoff_alt > 0.5)

    def _fly(self, dt: float) -> None:
        mode = self.mode
        if self.landed_state in (TAKEOFF, LANDING):
            self.landed_state = IN_AIR  # _climb / _land set it again while they run
        if self.landed and not self._wants_climb():
            self._ground()
            return
        if mode == "AUTO.TAKEOFF":
            if self._climb(self._takeoff_alt, dt):
                self.mode = "AUTO.LOITER"
                self._hold = (self.lat, self.lon, self.alt_rel)
        elif mode == "AUTO.MISSION":
            mission_exec.step(self, dt)
        elif mode == "AUTO.RTL":
            self._rtl_step(dt)
        elif mode == "AUTO.LAND":
            self._land(dt)
        elif mode == "ORBIT" and self._orbit is not None:
            self._orbit_step(dt)
        else:  # hold (LOITER, POSCTL and the manual modes without sticks)
            if self._needs_takeoff:
                if self._climb(self._takeoff_alt, dt):
                    self._needs_takeoff = False
                return
            hold = self._hold or (self.lat, self.lon, self.alt_rel)
            self._goto(hold[0], hold[1], hold[2], self.cruise, dt)

    def _ground(self) -> None:
        self.vn = self.ve = self.vd = 0.0
        self.roll = self.pitch = self.yaw_rate = 0.0
        self.airspeed = 0.0
        self.landed_state = ON_GROUND

    # guidance -------------------------------------------------------------------------------------------
    def _goto(self, lat: float, lon: float, alt_rel: float, speed: float, dt: float,
              yaw_to: tuple[float, float] | None = None, climb: float | None = None) -> tuple[float, float]:
        """Fly toward a point; returns (horizontal, vertical) distance left in metres."""
        p = self.params
        dn, de = offset_ne(self.lat, self.lon, lat, lon)
        dist = math.hypot(dn, de)
        acc = p["MPC_ACC_HOR"]
        if self.gps_lost or self.motor_failed:
            want_n = want_e = 0.0  # no position control: drift with the wind
        else:
            v = min(speed, math.sqrt(2.0 * acc * 0.8 * dist), dist / max(dt, 1e-3))
            want_n, want_e = (dn / dist * v, de / dist * v) if dist > 1e-6 else (0.0, 0.0)
        dz = alt_rel - self.alt_rel
        up = climb if climb is not None else p["MPC_Z_V_AUTO_UP"]
        vz = min(up if dz > 0 else p["MPC_Z_V_AUTO_DN"], math.sqrt(2.0 * 2.0 * abs(dz)),
                 abs(dz) / max(dt, 1e-3))
        self._apply_velocity(want_n, want_e, -math.copysign(vz, dz), dt, yaw_to)
        return dist, abs(alt_rel - self.alt_rel)

    def _apply_velocity(self, want_n: float, want_e: float, want_d: float, dt: float,
                        yaw_to: tuple[float, float] | None = None) -> None:
        p = self.params
        w_speed, w_from = self.wind
        wind_n = -w_speed * math.cos(math.radians(w_from))
        wind_e = -w_speed * math.sin(math.radians(w_from))
        drifting = self.gps_lost or self.motor_failed
        # air velocity needed for the wanted ground velocity, limited by what the airframe can do
        an, ae = (want_n - wind_n, want_e - wind_e) if not drifting else (0.0, 0.0)
        amax = p["MPC_XY_VEL_MAX"]
        a = math.hypot(an, ae)
        if a > amax:
            an, ae = an * amax / a, ae * amax / a
        tn, te = an + wind_n, ae + wind_e
        acc = p["MPC_ACC_HOR"] * dt
        dvn, dve = tn - self.vn, te - self.ve
        dv = math.hypot(dvn, dve)
        if dv > acc:
            dvn, dve = dvn * acc / dv, dve * acc / dv
        self.vn += dvn
        self.ve += dve
        self.vd = want_d
        self.lat, self.lon = move_ne(self.lat, self.lon, self.vn * dt, self.ve * dt)
        self.alt_rel = max(0.0, self.alt_rel - self.vd * dt) if self.alt_rel > 0 or self.vd < 0 else 0.0
        air_n, air_e = self.vn - wind_n, self.ve - wind_e
        self.airspeed = math.hypot(air_n, air_e)
        # heading: toward the ROI / given point, else along the track when moving
        if yaw_to is None and self.roi is not None:
            yaw_to = (self.roi[0], self.roi[1])
        want_yaw = None
        if yaw_to is not None:
            yn, ye = offset_ne(self.lat, self.lon, yaw_to[0], yaw_to[1])
            if math.hypot(yn, ye) > 1.0:
                want_yaw = math.atan2(ye, yn)
        elif math.hypot(want_n, want_e) > 1.0:
            want_yaw = math.atan2(want_e, want_n)
        self.yaw_rate = 0.0
        if want_yaw is not None:
            err = (want_yaw - self.heading + math.pi) % (2 * math.pi) - math.pi
            step = math.radians(p["MPC_YAWRAUTO_MAX"]) * dt
            turn = max(-step, min(step, err))
            self.heading = (self.heading + turn) % (2 * math.pi)
            self.yaw_rate = turn / dt if dt > 0 else 0.0
        # tilt: drag balance (~0.012 per (m/s)^2 of airspeed) plus acceleration, in the body frame
        tilt_n = 0.012 * air_n * abs(air_n) / G + dvn / max(dt, 1e-3) / G
        tilt_e = 0.012 * air_e * abs(air_e) / G + dve / max(dt, 1e-3) / G
        ch, sh = math.cos(self.heading), math.sin(self.heading)
        fwd, right = tilt_n * ch + tilt_e * sh, -tilt_n * sh + tilt_e * ch
        self.pitch = -math.atan(max(-0.6, min(0.6, fwd)))
        self.roll = math.atan(max(-0.6, min(0.6, right)))

    def _climb(self, alt_rel: float, dt: float) -> bool:
        """Vertical take-off to ``alt_rel``; True once there."""
        if self.landed:
            self.say(6, "Takeoff detected")
            self._landed_at = None
            self._flew = True
        self.landed_state = TAKEOFF
        hold = self._hold or (self.lat, self.lon, self.alt_rel)
        _, dv = self._goto(hold[0], hold[1], alt_rel, self.cruise, dt, climb=self.params["MPC_TKO_SPEED"])
        if dv < 0.3:
            self.landed_state = IN_AIR
            return True
        return False

    def _land(self, dt: float, lat: float | None = None, lon: float | None = None) -> bool:
        """Descend and touch down at the current (or given) position; True when on the ground."""
        p = self.params
        if self.landed:
            return True
        self.landed_state = LANDING
        if self.motor_failed:
            speed = 3.0
        elif self.alt_rel > p["MPC_LAND_ALT1"]:
            speed = p["MPC_Z_V_AUTO_DN"]
        elif self.alt_rel > p["MPC_LAND_ALT2"]:
            f = (self.alt_rel - p["MPC_LAND_ALT2"]) / max(p["MPC_LAND_ALT1"] - p["MPC_LAND_ALT2"], 0.1)
            speed = p["MPC_LAND_SPEED"] + f * (p["MPC_Z_V_AUTO_DN"] - p["MPC_LAND_SPEED"])
        else:
            speed = p["MPC_LAND_SPEED"]
        hold = self._hold or (self.lat, self.lon, self.alt_rel)
        tlat, tlon = (lat, lon) if lat is not None and lon is not None else (hold[0], hold[1])
        dn, de = offset_ne(self.lat, self.lon, tlat, tlon)
        dist = math.hypot(dn, de)
        v = min(self.cruise, math.sqrt(2.0 * p["MPC_ACC_HOR"] * 0.8 * dist), dist / max(dt, 1e-3))
        want_n, want_e = (dn / dist * v, de / dist * v) if dist > 1e-6 else (0.0, 0.0)
        self._apply_velocity(want_n, want_e, speed, dt)
        if self.alt_rel <= 0.0:
            self.alt_rel = 0.0
            self._ground()
            self._landed_at = self.t
            self.say(6, "Landing detected")
            return True
        return False

    def _fall(self, dt: float) -> None:
        self.vd = min(self.vd + G * dt, 30.0)
        self.alt_rel = max(0.0, self.alt_rel - self.vd * dt)
        self.lat, self.lon = move_ne(self.lat, self.lon, self.vn * dt, self.ve * dt)
        if self.alt_rel <= 0.0:
            self.say(0, "Vehicle hit the ground")
            self._ground()

    def _orbit_step(self, dt: float) -> None:
        assert self._orbit is not None
        lat, lon, alt, radius, speed = self._orbit
        self._orbit_angle += speed / radius * dt
        pn, pe = radius * math.cos(self._orbit_angle), radius * math.sin(self._orbit_angle)
        tlat, tlon = move_ne(lat, lon, pn, pe)
        self._goto(tlat, tlon, alt, max(abs(speed) * 1.5, self.cruise), dt, yaw_to=(lat, lon))

    # RTL ------------------------------------------------------------------------------------------------
    def _rtl_start(self) -> None:
        self._rtl_phase = "climb"
        best = (self.home[0], self.home[1])
        best_d = math.hypot(*offset_ne(self.lat, self.lon, *best))
        for it in self.store.plans[2]:
            d = math.hypot(*offset_ne(self.lat, self.lon, it.lat, it.lon))
            if d < best_d:
                best, best_d = (it.lat, it.lon), d
        self._rtl_dest = best
        self._rtl_alt = max(self.alt_rel, self.params["RTL_RETURN_ALT"]) if best_d > self.params[
            "RTL_MIN_DIST"] else self.alt_rel
        self._rtl_timer = 0.0

    def _rtl_step(self, dt: float) -> None:
        p = self.params
        lat, lon = self._rtl_dest
        if self.landed and self._rtl_phase == "done":
            self._ground()
            return
        if self._rtl_phase == "climb":
            _, dv = self._goto(self.lat, self.lon, self._rtl_alt, self.cruise, dt)
            if dv < 0.5:
                self._rtl_phase = "return"
                self.say(6, f"RTL: return at {self._rtl_alt:.0f} m above home")
        elif self._rtl_phase == "return":
            dh, _ = self._goto(lat, lon, self._rtl_alt, self.cruise, dt, yaw_to=None)
            if dh < p["NAV_ACC_RAD"]:
                self._rtl_phase = "descend"
        elif self._rtl_phase == "descend":
            _, dv = self._goto(lat, lon, min(self._rtl_alt, p["RTL_DESCEND_ALT"]), self.cruise, dt)
            if dv < 0.5:
                self._rtl_phase = "delay"
        elif self._rtl_phase == "delay":
            self._goto(lat, lon, self.alt_rel, self.cruise, dt)
            self._rtl_timer += dt
            delay = p["RTL_LAND_DELAY"]
            if delay >= 0 and self._rtl_timer >= delay:
                self._rtl_phase = "land"
                self._hold = (lat, lon, 0.0)
        elif self._rtl_phase == "land" and self._land(dt, lat, lon):
            self._rtl_phase = "done"

    # -- battery and geofence, for the shell and tests ------------------------------------------------
    @property
    def voltage(self) -> float:
        return failsafe.voltage(self)

    def fence_breach(self) -> str:
        """Why the current position is outside the geofence, or '' when inside."""
        return failsafe.fence_breach(self)
