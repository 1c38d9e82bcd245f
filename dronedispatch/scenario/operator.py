"""The scenario's operator and pilot: dispatch by policy, act at set times, all through the HTTP API.

Dispatch policy (``operator:`` in the file): ``auto`` dispatches every new incident after the
reaction delay; ``rules`` only those a rule matches (category, minimum severity), with the rule's
template and parameters; ``manual`` leaves it to the timeline's actions. When the service answers
that no drone is free, the incident waits and is dispatched again as soon as a drone turns
ready (``retry_when_busy``), most severe first, the way an operator works a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx

from dronedispatch.scenario.model import ActionEntry, DispatchRule, Scenario
from dronedispatch.scenario.recording import Arrival, Recording, Refusal

log = logging.getLogger(__name__)

PILOT_COMMANDS = ("pause", "resume", "rtl", "land", "abort")
#: Answers that mean "not now": the incident waits in the queue (too_far: for a closer drone to free up).
BUSY = ("no_drone", "already_dispatched", "too_far")


class Operator:
    def __init__(
        self, spec: Scenario, rec: Recording, clock: Any, http: httpx.AsyncClient, tokens: dict[str, dict[str, str]]
    ) -> None:
        self.spec = spec
        self.policy = spec.operator
        self.rec = rec
        self.clock = clock
        self.http = http
        self.tokens = tokens
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: dict[int, tuple[int, float, dict[str, Any]]] = {}  # incident → (severity, since, request)
        self._drone_states: dict[str, str] = {}
        self._retrying: asyncio.Task[None] | None = None
        self._catalog: list[dict[str, Any]] | None = None
        self._reports: dict[int, int] = {}  # incident → report count seen

    @property
    def pending(self) -> int:
        return len(self._waiting) + sum(1 for t in self._tasks if not t.done())

    # -- policy --------------------------------------------------------------------------------
    def _rule_for(self, data: dict[str, Any]) -> DispatchRule | None:
        for rule in self.policy.rules:
            category_ok = rule.category is None or rule.category.value == data["category"]
            if category_ok and data["severity"] >= rule.min_severity:
                return rule
        return None

    def incident_created(self, t: float, data: dict[str, Any]) -> None:
        """A new incident appeared on the event bus: dispatch it if the policy says so."""
        self._reports.setdefault(data["id"], int(data.get("report_count") or 1))
        if self.policy.dispatch == "manual" or data.get("status") != "open":
            return
        rule = self._rule_for(data)
        if self.policy.dispatch == "rules" and rule is None:
            self.rec.note(t, "operator", f"incident {data['id']}: no dispatch rule matches; left for the operator")
            return
        request: dict[str, Any] = {"params": {**self.policy.params, **(rule.params if rule else {})}}
        if rule is not None and rule.template:
            request["template"] = rule.template
        delay = rule.delay if rule is not None and rule.delay else self.policy.delay
        self._spawn(self._dispatch_later(data["id"], int(data["severity"]), data["category"], t + delay, request))

    def incident_updated(self, t: float, data: dict[str, Any]) -> None:
        """Another report merged into a known incident. If no drone is there any more (its mission
        ended or is on the way home), the new report is answered like a new incident."""
        count = int(data.get("report_count") or 1)
        previous = self._reports.get(data["id"], 1)
        self._reports[data["id"]] = count
        if count <= previous or data.get("status") == "closed" or self.policy.dispatch == "manual":
            return
        missions = [m for m in self.rec.missions.values() if m.incident_id == data["id"]]
        if any(m.final not in ("returning", "completed", "aborted", "failed") for m in missions):
            return  # a drone is on its way or on scene: the new report is answered
        self.rec.note(t, "operator", f"incident {data['id']}: new report and no drone there; dispatching again")
        self.incident_created(t, {**data, "status": "open"})

    def spawn(self, coro: Any) -> None:
        self._spawn(coro)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _templates(self) -> list[dict[str, Any]]:
        if self._catalog is None:
            r = await self.http.get("/api/v1/mission-templates", headers=self.tokens["operator"])
            self._catalog = r.json() if r.status_code == 200 else []
        return self._catalog

    async def _fit_params(self, category: str, request: dict[str, Any]) -> dict[str, Any]:
        """Keep only the scenario's parameters the chosen template has, within its limits.

        ``params: {time_on_scene_s: 30}`` means "where the template has a time on scene"; a search
        pattern without one must not be refused for it.
        """
        catalog = await self._templates()
        name = request.get("template")
        tpl = next((t for t in catalog if t["name"] == name), None) if name else None
        if tpl is None:
            tpl = next((t for t in catalog if category in t["default_for"]), None)
        if tpl is None:
            return request
        fitted = {}
        for key, value in request.get("params", {}).items():
            spec = tpl["params"].get(key)
            if spec is None:
                continue
            lo, hi = spec.get("minimum"), spec.get("maximum")
            fitted[key] = min(max(value, lo if lo is not None else value), hi if hi is not None else value)
        return {**request, "params": fitted}

    async def _dispatch_later(
        self, incident_id: int, severity: int, category: str, at: float, request: dict[str, Any]
    ) -> None:
        await self.clock.until(at)
        request = await self._fit_params(category, request)
        arrival = self._arrival(incident_id)
        if arrival is not None:
            entry = self.spec.incident(arrival.ref)
            if entry.approval_ref and "approval_ref" not in request:
                request = {**request, "approval_ref": entry.approval_ref}
        code = await self.dispatch(incident_id, request)
        if code in BUSY and self.policy.retry_when_busy:
            self._waiting[incident_id] = (severity, self.clock.now(), request)

    def _arrival(self, incident_id: int) -> Arrival | None:
        return next((a for a in self.rec.arrivals.values() if a.incident_id == incident_id), None)

    def bind(self, arrival: Arrival) -> None:
        """A report's incident id became known (HTTP sources answer with it)."""

    def drone_ready(self, drone_id: str, state: str) -> None:
        previous = self._drone_states.get(drone_id)
        self._drone_states[drone_id] = state
        if (
            state == "ready"
            and previous != "ready"
            and self._waiting
            and (self._retrying is None or self._retrying.done())
        ):
            self._retrying = asyncio.create_task(self._retry_waiting())

    async def _retry_waiting(self) -> None:
        for incident_id, (_, _, request) in sorted(self._waiting.items(), key=lambda kv: (-kv[1][0], kv[1][1])):
            code = await self.dispatch(incident_id, request)
            if code == "no_drone":
                return  # still none free; wait for the next drone to turn ready
            if code in ("already_dispatched", "too_far"):
                continue  # waits for its last drone to come home, or for a closer one; the next may go
            self._waiting.pop(incident_id, None)

    # -- HTTP ----------------------------------------------------------------------------------
    async def dispatch(self, incident_id: int, request: dict[str, Any]) -> str | None:
        """POST /incidents/{id}/dispatch; returns None on success or the refusal code."""
        clicked = self.clock.now()  # the response time runs from the click, not from the service's answer
        r = await self.http.post(
            f"/api/v1/incidents/{incident_id}/dispatch", json=request, headers=self.tokens["operator"]
        )
        t = self.clock.now()
        if r.status_code == 201:
            m = r.json()
            self.rec.dispatched_at[int(m["id"])] = clicked
            self.rec.note(t, "operator", f"incident {incident_id}: dispatched {m['drone_id']} (mission {m['id']})")
            return None
        body = _json(r)
        code = str(body.get("code") or f"http_{r.status_code}")
        reason = str(body.get("detail") or "")
        final = not (code in BUSY and self.policy.retry_when_busy)
        if code == "already_dispatched":
            # the incident's previous drone is still out (e.g. on its way home): not a refusal to report
            self.rec.note(t, "operator", f"incident {incident_id}: {reason}; will dispatch when it is back")
            return code
        self.rec.refusals.append(Refusal(t, f"#{incident_id}", code, reason, final=final, incident_id=incident_id))
        self.rec.note(
            t,
            "operator",
            f"incident {incident_id}: dispatch refused ({code}): {reason}"
            + ("" if final else " — will retry when a drone is free"),
        )
        return code

    async def act(self, a: ActionEntry) -> None:
        t = self.clock.now()
        arrival = self.rec.arrivals.get(a.incident)
        if arrival is None or arrival.incident_id is None:
            self.rec.pilot_commands.append((t, a.incident, a.do, "no incident to act on"))
            self.rec.note(t, "operator", f"{a.do} {a.incident}: the incident does not exist (yet)")
            return
        iid = arrival.incident_id
        if a.do == "dispatch":
            request: dict[str, Any] = {"params": {**self.policy.params, **a.params}}
            for key in ("drone", "approval_ref", "template"):
                value = getattr(a, key)
                if value is not None:
                    request["drone_id" if key == "drone" else key] = value
            self._waiting.pop(iid, None)
            await self.dispatch(iid, request)
            return
        if a.do == "close":
            r = await self.http.post(
                f"/api/v1/incidents/{iid}/close",
                json={"outcome": "closed by the scenario"},
                headers=self.tokens["operator"],
            )
            self.rec.note(t, "operator", f"close {a.incident}: HTTP {r.status_code}")
            return
        missions = self.rec.missions_for(a.incident)
        if not missions:
            self.rec.pilot_commands.append((t, a.incident, a.do, "no mission"))
            self.rec.note(t, "pilot", f"{a.do} {a.incident}: no mission to command")
            return
        mission = missions[-1]
        r = await self.http.post(
            f"/api/v1/missions/{mission.id}/commands", json={"command": a.do}, headers=self.tokens["pilot"]
        )
        result = "accepted" if r.status_code == 200 else f"HTTP {r.status_code}: {_json(r).get('detail')}"
        self.rec.pilot_commands.append((t, a.incident, a.do, result))
        self.rec.note(t, "pilot", f"{a.do} mission {mission.id} ({mission.drone_id}): {result}")

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._retrying] if self._retrying else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {"detail": r.text[:200]}
    return body if isinstance(body, dict) else {"detail": str(body)}
