"""The lease rules: every node acting on its own view of the cluster ends with each link held by exactly
one node and the counts at most one apart, whatever the order the nodes act in."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dronedispatch.cluster.lease_rules import LeasePlan, plan, rendezvous_score, target_counts

NODES = [f"node-{i}" for i in range(8)]


def links_of(n: int) -> list[str]:
    return [f"link{i:02d}" for i in range(n)]


def counts(nodes: list[str], holders: dict[str, str]) -> dict[str, int]:
    out = dict.fromkeys(nodes, 0)
    for holder in holders.values():
        out[holder] = out.get(holder, 0) + 1
    return out


def balanced(links: list[str], nodes: list[str], holders: dict[str, str]) -> bool:
    c = counts(nodes, holders)
    return set(holders) == set(links) and set(c) == set(nodes) and max(c.values()) - min(c.values()) <= 1


class Cluster:
    """A key-value bucket as the rules see it: create fails on a held key, a release deletes."""

    def __init__(self, links: list[str], nodes: list[str], holders: dict[str, str] | None = None) -> None:
        self.links = links
        self.nodes = list(nodes)
        self.holders = dict(holders or {})
        self.releases = 0

    def check_plan(self, node: str, p: LeasePlan) -> None:
        """What the rules promise about any one plan, on the view it was made from."""
        assert not (p.claim and p.release)
        assert all(self.holders.get(link) == node for link in p.release)
        assert all(link not in self.holders for link in p.claim)
        if p.release:
            # A surplus goes back only when every link is held and a live node is two links short.
            c = counts(self.nodes, self.holders)
            assert set(self.holders) == set(self.links)
            assert min(c[n] for n in self.nodes) <= c[node] - 2
            # and the releaser keeps at least its share (it gives back a surplus, never more)
            floor, _ = target_counts(len(self.links), len(self.nodes))
            assert c[node] - len(p.release) >= min(floor, c[node] - 1)

    def apply(self, node: str, p: LeasePlan) -> None:
        for link in p.release:
            del self.holders[link]
            self.releases += 1
        for link in p.claim:
            self.holders.setdefault(link, node)  # create: the first claimer wins

    def sequential_round(self, order: list[str]) -> None:
        for node in order:
            p = plan(node, self.links, self.nodes, self.holders)
            self.check_plan(node, p)
            self.apply(node, p)

    def concurrent_round(self, order: list[str]) -> None:
        """Every node plans on the same snapshot, then the writes land in ``order``."""
        plans = {node: plan(node, self.links, self.nodes, self.holders) for node in self.nodes}
        for node, p in plans.items():
            self.check_plan(node, p)
        for node in order:
            for link in plans[node].release:
                del self.holders[link]
                self.releases += 1
        for node in order:
            for link in plans[node].claim:
                self.holders.setdefault(link, node)


def rounds_bound(n_links: int) -> int:
    # Each surplus link moves in two rounds (hand back, then claim); at most every link moves once.
    return 2 * n_links + 3


scenario = st.tuples(st.integers(0, 24), st.integers(1, 8), st.randoms(use_true_random=False))


@settings(max_examples=300, deadline=None)
@given(scenario, st.booleans())
def test_nodes_converge_from_any_start(params: tuple[int, int, random.Random], concurrent: bool) -> None:
    n_links, n_nodes, rnd = params
    links, nodes = links_of(n_links), NODES[:n_nodes]
    # Any start: some links held by random nodes, possibly all by one.
    start = {link: rnd.choice(nodes) for link in links if rnd.random() < 0.6}
    cluster = Cluster(links, nodes, start)
    for _ in range(rounds_bound(n_links)):
        if balanced(links, nodes, cluster.holders):
            break
        order = rnd.sample(nodes, len(nodes))
        (cluster.concurrent_round if concurrent else cluster.sequential_round)(order)
    assert balanced(links, nodes, cluster.holders), cluster.holders
    # Converged means quiet: nobody claims or hands back any more.
    for node in nodes:
        assert plan(node, links, nodes, cluster.holders) == LeasePlan()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 30), st.integers(1, 8))
def test_identical_views_deal_every_unheld_link_once_in_one_round(n_links: int, n_nodes: int) -> None:
    links, nodes = links_of(n_links), NODES[:n_nodes]
    claims = [link for node in nodes for link in plan(node, links, nodes, {}).claim]
    assert sorted(claims) == links  # disjoint and complete: no compare-and-set conflict at all
    cluster = Cluster(links, nodes)
    cluster.concurrent_round(nodes)
    assert balanced(links, nodes, cluster.holders)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 24), st.integers(1, 7), st.randoms(use_true_random=False))
def test_a_joining_node_takes_only_its_share_and_nothing_else_moves(
    n_links: int, n_nodes: int, rnd: random.Random
) -> None:
    links, nodes = links_of(n_links), NODES[:n_nodes]
    cluster = Cluster(links, nodes)
    cluster.concurrent_round(nodes)
    before = dict(cluster.holders)
    cluster.nodes.append(NODES[n_nodes])
    for _ in range(rounds_bound(n_links)):
        cluster.concurrent_round(rnd.sample(cluster.nodes, len(cluster.nodes)))
    assert balanced(links, cluster.nodes, cluster.holders)
    moved = [link for link in links if cluster.holders[link] != before[link]]
    assert all(cluster.holders[link] == NODES[n_nodes] for link in moved)
    assert cluster.releases == len(moved) <= target_counts(n_links, n_nodes + 1)[1]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 24), st.integers(2, 8), st.randoms(use_true_random=False))
def test_a_dead_nodes_links_are_taken_over_once_its_leases_expire(
    n_links: int, n_nodes: int, rnd: random.Random
) -> None:
    links, nodes = links_of(n_links), NODES[:n_nodes]
    cluster = Cluster(links, nodes)
    cluster.concurrent_round(nodes)
    dead = rnd.choice(nodes)
    survivors = [n for n in nodes if n != dead]
    # Heartbeat gone first, leases still there: nobody touches the dead node's links yet.
    cluster.nodes = survivors
    held_by_dead = {link for link, holder in cluster.holders.items() if holder == dead}
    cluster.concurrent_round(survivors)
    assert {link for link, holder in cluster.holders.items() if holder == dead} == held_by_dead
    # The leases expire: the survivors take them and even out, and no survivor hands anything back.
    for link in held_by_dead:
        del cluster.holders[link]
    for _ in range(rounds_bound(n_links)):
        cluster.concurrent_round(rnd.sample(survivors, len(survivors)))
    assert balanced(links, survivors, cluster.holders)
    assert cluster.releases == 0


def test_floor_and_ceil_shares() -> None:
    assert target_counts(4, 3) == (1, 2)
    assert target_counts(4, 2) == (2, 2)
    assert target_counts(0, 5) == (0, 0)
    with pytest.raises(ValueError):
        target_counts(3, 0)


def test_this_node_is_live_even_when_its_heartbeat_is_not_seen_yet() -> None:
    assert plan("a", ["l1", "l2"], [], {}) == LeasePlan(claim=("l1", "l2"))


def test_a_link_held_by_a_node_that_is_not_live_is_left_alone() -> None:
    # "old" holds l1 without a heartbeat: not claimable, and not counted against "a" or "b".
    links = ["l1", "l2", "l3"]
    view = {"l1": "old", "l2": "a", "l3": "a"}
    assert plan("b", links, ["a", "b"], view) == LeasePlan()  # a:2, b:0 -> a hands one back, not b
    assert plan("a", links, ["a", "b"], view).release != ()


def test_two_four_split_hands_back_exactly_one_link_from_the_busiest() -> None:
    links = links_of(4)
    view = {"link00": "a", "link01": "a", "link02": "b", "link03": "b"}
    assert all(plan(n, links, ["a", "b"], view) == LeasePlan() for n in ["a", "b"])
    # A third node joins: the two nodes at 2 agree on which one of them gives up one link.
    plans = {n: plan(n, links, ["a", "b", "c"], view) for n in ["a", "b", "c"]}
    assert sorted(len(p.release) for p in plans.values()) == [0, 0, 1]
    assert all(not p.claim for p in plans.values())


def test_no_hand_back_while_a_link_waits_unheld() -> None:
    links = links_of(5)
    view = {"link00": "a", "link01": "a", "link02": "a", "link03": "a"}  # link04 unheld, b has none
    assert plan("a", links, ["a", "b"], view) == LeasePlan()
    assert plan("b", links, ["a", "b"], view) == LeasePlan(claim=("link04",))


def test_an_overdue_link_is_claimed_by_anyone() -> None:
    links = ["l1", "l2"]
    view = {"l1": "a"}
    taker = plan("a", links, ["a", "b"], view).claim + plan("b", links, ["a", "b"], view).claim
    assert taker == ("l2",)
    other = "a" if plan("b", links, ["a", "b"], view).claim else "b"
    assert plan(other, links, ["a", "b"], view, overdue={"l2"}) == LeasePlan(claim=("l2",))


def test_rendezvous_score_is_stable_across_processes() -> None:
    # A fixed value: the score must not depend on PYTHONHASHSEED or the process.
    assert rendezvous_score("udpout:127.0.0.1:14550", "node-a") == 18228353335173885903
    assert rendezvous_score("udpout:127.0.0.1:14550", "node-b") != rendezvous_score("udpout:127.0.0.1:14550", "node-a")


def test_a_node_back_from_a_restart_gets_its_share_back_in_a_few_rounds_not_one_link_a_round() -> None:
    links, nodes = links_of(100), ["a", "b"]
    cluster = Cluster(links, nodes, {link: "a" for link in links[:98]} | {link: "b" for link in links[98:]})
    rounds = 0
    while not balanced(links, nodes, cluster.holders):
        cluster.concurrent_round(nodes)
        rounds += 1
        assert rounds <= 3, counts(nodes, cluster.holders)
    assert cluster.releases == 48  # exactly the surplus moved, nothing else
