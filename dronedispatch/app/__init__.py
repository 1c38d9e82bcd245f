"""The application layer: the services behind the API, each given only the ports it uses.

- :mod:`.dispatch` — incidents in, the best drone and a checked mission out;
- :mod:`.missions` — flying missions: upload, arm, start, follow, pilot commands;
- :mod:`.fleet` — the live fleet (drones joined with what their vehicles report);
- :mod:`.live_video` — finding, relaying and recording each drone's video;
- :mod:`.vehicle_watch` — vehicle events turned into fleet, mission and video updates;
- :mod:`.overview` — what a browser shows on connect;
- :mod:`.alerts`, :mod:`.writes` — alerts, and store writes kept in order off the loop;
- :mod:`.ports` — the interfaces they take; :mod:`.errors` — why they refuse.

Nothing here imports the API, the runtime or HTTP: services raise typed errors and publish typed
events (:mod:`dronedispatch.events`); ``dronedispatch.runtime`` wires them together.
"""
