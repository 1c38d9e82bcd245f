"""WebSocket /api/v1/events: a snapshot on connect, then every change. ``?token=`` takes a one-use
ticket (POST /api/v1/auth/ws-ticket) or an access token."""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from dronedispatch.api.deps import Principal, authenticate
from dronedispatch.api.security import InvalidToken
from dronedispatch.app.logins import TICKET_PREFIX
from dronedispatch.events import SnapshotMessage
from dronedispatch.runtime import Runtime

router = APIRouter(tags=["events"])
log = logging.getLogger(__name__)


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
    return Principal(user.username, user.role, ticket.session_id)


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
    try:
        snapshot = SnapshotMessage(
            data=await run_in_threadpool(runtime.overview.snapshot), user=principal.username, role=principal.role
        )
        await websocket.send_text(snapshot.model_dump_json())
        async for event in sub:
            await websocket.send_text(event.json_text())
        if sub.lagging:
            await websocket.close(code=4408, reason="too slow: reconnect for a fresh snapshot")
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        sub.close()
