"""A PX4-compatible SITL fleet simulator: N simulated PX4 quadrotors in one process.

From outside it looks like N instances of PX4 SITL (system id i+1, MAV_AUTOPILOT_PX4, PX4 custom
modes, PX4's ports and stream rates), so MAVSDK, QGroundControl and our own link talk to it as to
PX4 SIH. Layers, innermost first:

- :mod:`.model` (with :mod:`.mission_exec`, :mod:`.failsafe`, :mod:`.modes`, :mod:`.geodesy`,
  :mod:`.params`): the pure vehicle — kinematics on WGS84, modes, mission executor, battery,
  failsafes, faults. Takes ``dt``; never touches sockets or clocks.
- :mod:`.mission_server`, :mod:`.commands`, :mod:`.camera_protocol`: the MAVLink protocols, sans I/O.
- :mod:`.telemetry`, :mod:`.wire`: PX4's streams and fast MAVLink 2 framing (signing optional).
- :mod:`.vehicle`: :class:`~.vehicle.SimVehicle`, one vehicle's links, state and fault injection.
- :mod:`.runner`: :class:`~.runner.SimFleet` (UDP sockets, one ticker task) and
  :func:`~.runner.run_sitl` (``dronedispatch sitl``).
- :mod:`.camera`: the synthetic RTP/H.264 camera, started by the camera protocol.
"""
