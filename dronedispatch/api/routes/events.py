"""WebSocket /api/v1/events: a snapshot on connect, then every change. ``?token=`` takes a one-use
ticket (POST /api/v1/auth/ws-ticket) or an access token. An open stream is closed (4401) soon after its
account is disabled or changed or its session signed out, on whichever node it is connected to."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from dronedispatch.api.deps import Principal, authenticate
from dronedispatch.api.security import InvalidToken
from dronedispatch.app.access import EventFilter, Scope
from dronedispatch.app.logins import TICKET_PREFIX
from dronedispatch.bus import Subscription
from dronedispatch.events import Snapshot, SnapshotMessage
from dronedispatch.runtime import Runtime

router = APIRouter(tags=["events"])
log = logging.getLogger(__name__)
#: How often an open stream checks that its account and session still hold (a database read).
RECHECK_S = 15.0


def _principal(runtime: Runtime, token: str) -> Principal:
    """``token`` is a one-use ticket from POST /auth/ws-ticket (what the web page sends) or, for
    outside tools, an access token."""
    if not token.startswith(TICKET_PREFIX):
        return authenticate(runtime, token)
    ticket = runtime.logins.redeem_ticket(token)
    if ticket is None:
        raise InvalidToken("unknown, used or expired ticket")
    user = runtime.store.get_user(ticket.username)
    if user is None or user.disabled:
        raise InvalidToken("account disabled or changed: log in again")
    return Principal(user.username, user.role, session_id=ticket.session_id, district=user.district)


def _still_allowed(runtime: Runtime, principal: Principal) -> bool:
    user = runtime.store.get_user(principal.username)
    if user is None or user.disabled or user.role != principal.role or user.district != principal.district:
        return False
    return principal.session_id is None or runtime.logins.session_active(principal.session_id, principal.username)


async def _watch_access(runtime: Runtime, principal: Principal, sub: Subscription, revoked: asyncio.Event) -> None:
    while True:
        await asyncio.sleep(RECHECK_S)
        try:
            allowed = await run_in_threadpool(_still_allowed, runtime, principal)
        except Exception:  # the database away for a moment: keep the stream, check again later
            log.warning("could not re-check the event stream of %s", principal.username, exc_info=True)
            continue
        if not allowed:
            revoked.set()
            sub.close()  # ends the stream's loop
            return


def _snapshot(runtime: Runtime, only: EventFilter) -> Snapshot:
    return only.snapshot(runtime.overview.snapshot())


async def _until_gone(websocket: WebSocket, sub: Subscription) -> None:
    """Ends the stream once the client has gone, even when no event comes for it to fail on (a district
    connection may wait long for one)."""
    with contextlib.suppress(Exception):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # the stream is one-way: whatever the client sends is ignored
    sub.close()


@router.websocket("/events")
async def events(websocket: WebSocket, token: str = "") -> None:
    runtime: Runtime = websocket.app.state.runtime
    try:  # the account check and the snapshot read the store: in a worker thread, never on the loop
        principal = await run_in_threadpool(_principal, runtime, token)
    except InvalidToken as exc:
        await websocket.close(code=4401, reason=str(exc))
        return
    await websocket.accept()
    sub = runtime.bus.subscribe(maxsize=2000)  # subscribe first so nothing falls between snapshot and stream
    revoked = asyncio.Event()
    watcher: asyncio.Task[None] | None = None
    gone = asyncio.create_task(_until_gone(websocket, sub))
    try:
        # the district rule, per connection: a district account's snapshot and events are its district's
        only = runtime.access.event_filter(Scope(principal.district))
        snapshot = SnapshotMessage(
            data=await run_in_threadpool(_snapshot, runtime, only), user=principal.username, role=principal.role
        )
        await websocket.send_text(snapshot.model_dump_json())
        watcher = asyncio.create_task(_watch_access(runtime, principal, sub, revoked))
        async for event in sub:
            allowed = only.decide(event)
            if allowed is None:  # a mission it has not met yet: looked up once, off the loop
                allowed = await run_in_threadpool(only.resolve, event)
            if allowed:
                await websocket.send_text(event.json_text())
        if revoked.is_set():
            await websocket.close(code=4401, reason="signed out, or the account was disabled or changed")
        elif sub.lagging:
            await websocket.close(code=4408, reason="too slow: reconnect for a fresh snapshot")
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        sub.close()
        gone.cancel()
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
