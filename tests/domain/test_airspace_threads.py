"""The API answers from a thread pool, so one Airspace is queried from many threads at once."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

from dronedispatch import cityfiles
from dronedispatch.domain.airspace import Airspace, NoRoute


def test_concurrent_queries_give_the_same_answers_as_sequential_ones() -> None:
    airspace = Airspace.from_geojson(cityfiles.read_structured(cityfiles.DEFAULT_AIRSPACE))
    rng = random.Random(7)
    pairs = [
        ((37.37 + rng.random() * 0.05, 126.62 + rng.random() * 0.06),
         (37.37 + rng.random() * 0.05, 126.62 + rng.random() * 0.06))
        for _ in range(120)
    ]  # fmt: skip

    def answer(pair: tuple[tuple[float, float], tuple[float, float]]) -> object:
        start, goal = pair
        try:
            route = airspace.route(start, goal)
        except NoRoute as exc:
            return ("no route", exc.reason)
        return (tuple(route), airspace.prohibited_at(*goal) is None, len(airspace.zones_at(*start)))

    expected = [answer(p) for p in pairs]
    fresh = Airspace.from_geojson(cityfiles.read_structured(cityfiles.DEFAULT_AIRSPACE))  # cold caches
    airspace = fresh
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(answer, pairs * 3))
    assert got == expected * 3
