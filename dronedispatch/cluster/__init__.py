"""Running the service as several nodes: the parts that talk to NATS JetStream and the rules they follow.

- :mod:`dronedispatch.cluster.nats_bus`: :class:`~dronedispatch.cluster.nats_bus.NatsEventBus`, the
  event bus shared by every node (replaces the in-process bus when ``DD_BUS_URL`` is set).
- :mod:`dronedispatch.cluster.lease_rules`: which vehicle links a node claims and hands back (pure rules).
- :mod:`dronedispatch.cluster.leases`: link leases with fencing (:class:`~dronedispatch.cluster.leases.LeaseManager`).
- :mod:`dronedispatch.cluster.nodes`: node heartbeats (:class:`~dronedispatch.cluster.nodes.NodeRegistry`).
- :mod:`dronedispatch.cluster.peers`: request/reply to the node holding a vehicle.
- :mod:`dronedispatch.cluster.node`: one node among several, wiring the above (theory of operation there).

Nothing is imported here, so importing one part does not load the NATS client for the others.
"""
