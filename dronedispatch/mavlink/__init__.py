"""The vehicle link: MAVLink transports, sans-I/O protocol machines, per-vehicle state.

Entry points: :class:`~dronedispatch.mavlink.link.MavlinkLink` (endpoints, discovery, events),
:class:`~dronedispatch.mavlink.vehicle.Vehicle` (``.mission``, ``.command``, ``.params``,
``.state``, ``.health``), events in :mod:`.events`, typed errors in :mod:`.errors`.

Module roles: ``frames`` (framing, signing), ``wire`` (encode/decode), ``state`` (state and
health rules), ``px4_modes`` (mode names), ``mission_protocol`` / ``command_protocol`` /
``param_protocol`` (sans-I/O machines on ``transaction``), ``transport`` (sockets, serial),
``link`` and ``vehicle`` (the asyncio shell and the facade).
"""
