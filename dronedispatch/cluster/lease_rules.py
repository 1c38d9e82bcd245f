"""Which vehicle links a node should claim and which it should hand back: pure rules, no I/O.

Every node runs :func:`plan` on its own view of the cluster (the link keys, the nodes whose heartbeats
are live, the current holder of each lease) and acts only on its own part of the answer. The views of
all nodes are alike most of the time, so the rules are deterministic functions of the view: the nodes
agree without talking, and a disagreement from a stale view only costs a failed compare-and-set.

- Unheld links are dealt out like cards: in sorted order, each to the live node that holds the fewest
  links so far, ties broken by rendezvous hashing of (link, node). A node claims the links dealt to it.
- Counts must differ by at most one. When they differ by two or more and every link is held, the node
  holding the most (ties by hash) hands back one link, the one it ranks lowest, and the node holding
  the fewest is dealt it on the next round. One link per round on one node keeps the hand-over gap to
  a single link at a time, and nothing is handed back while another link waits unheld: a surplus is
  given up only when a live node is there to take it.
- A link dealt to a node that does not take it in time is ``overdue``: then any node claims it (the
  compare-and-set picks one), and the counts even out again afterwards.
- A link held by a node that is not live (its heartbeat lapsed, or an earlier incarnation of a node)
  stays that node's until its lease expires: it is neither claimed nor counted for anyone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["LeasePlan", "plan", "rendezvous_score", "target_counts"]


def rendezvous_score(link: str, node: str) -> int:
    """A stable pseudo-random rank of ``node`` for ``link`` (the same in every process, unlike hash())."""
    digest = hashlib.blake2b(f"{link}\x00{node}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class LeasePlan:
    """What one node should do this round: ``claim`` the unheld links dealt to it (best first),
    ``release`` the links it should hand back now (at most one)."""

    claim: tuple[str, ...] = ()
    release: tuple[str, ...] = ()


def target_counts(links: int, nodes: int) -> tuple[int, int]:
    """(floor, ceil) of the share of ``links`` per node among ``nodes``: a balanced cluster has every
    node's count between the two."""
    if nodes <= 0:
        raise ValueError("at least one node")
    return links // nodes, -(-links // nodes)


def _counts(nodes: Iterable[str], links: Collection[str], holders: Mapping[str, str]) -> dict[str, int]:
    counts = dict.fromkeys(nodes, 0)
    for link in links:
        holder = holders.get(link)
        if holder in counts:
            counts[holder] += 1
    return counts


def plan(
    node_id: str,
    links: Iterable[str],
    live_nodes: Iterable[str],
    holders: Mapping[str, str],
    overdue: Collection[str] = (),
) -> LeasePlan:
    """This node's part of the round, from a view of the cluster.

    ``links``: every link key (one per DD_MAVLINK entry); ``live_nodes``: node ids with a live heartbeat
    (this node counts as live whether or not it is listed); ``holders``: link key -> holder node id for
    the links whose lease exists (keys that are not links are ignored); ``overdue``: unheld links that
    stayed unheld longer than their taker should have needed (it may be live yet failing): this node
    claims those too, after its own, so no link is left unheld because of one faulty node.
    """
    all_links = sorted(set(links))
    nodes = sorted(set(live_nodes) | {node_id})
    counts = _counts(nodes, all_links, holders)
    unheld = [link for link in all_links if link not in holders]

    if unheld:
        # Deal every unheld link; claim the ones dealt to this node. No hand-back in the same round:
        # the cluster first gets every link held.
        dealt: list[str] = []
        for link in unheld:
            taker = min(nodes, key=lambda n: (counts[n], -rendezvous_score(link, n), n))
            counts[taker] += 1
            if taker == node_id:
                dealt.append(link)
        dealt += [link for link in unheld if link in overdue and link not in dealt]
        return LeasePlan(claim=tuple(dealt))

    fewest = min(counts.values())
    most = max(counts.values())
    if most - fewest < 2:
        return LeasePlan()
    # One node hands back: the busiest, ties by a hash of the node ids, so all views agree. It gives back
    # its surplus over the share, as far as the others lack links, in one round (a restarted node gets
    # its share back in a few rounds, not one link per round), and never falls below the share itself.
    releaser = max(
        (n for n in nodes if counts[n] == most),
        key=lambda n: (rendezvous_score("release", n), n),
    )
    if releaser != node_id:
        return LeasePlan()
    floor, ceil = target_counts(len(all_links), len(nodes))
    lacking = sum(max(0, floor - c) for c in counts.values())
    n_release = max(1, min(most - ceil, lacking))
    mine = sorted((link for link in all_links if holders.get(link) == node_id),
                  key=lambda link: (rendezvous_score(link, node_id), link))  # fmt: skip
    return LeasePlan(release=tuple(mine[:n_release]))
