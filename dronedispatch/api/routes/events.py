"""WebSocket /api/v1/events: a snapshot on connect, then every change."""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from dronedispatch.api.deps import authenticate
from dronedispatch.api.security import InvalidToken

router = APIRouter(tags=["events"])
log = logging.getLogger(__name__)


@router.websocket("/events")
async def events(websocket: WebSocket, token: str = "") -> None:
    runtime = websocket.app.state.runtime
    try:
        principal = authenticate(runtime, token)
    except InvalidToken as exc:
        await websocket.close(code=4401, reason=str(exc))
        return
    await websocket.accept()
    sub = runtime.bus.subscribe(maxsize=2000)  # subscribe first so nothing falls between snapshot and stream
    try:
        snapshot = {"type": "snapshot", "data": runtime.snapshot(), "user": principal.username, "role": principal.role}
        await websocket.send_json(snapshot)
        async for event in sub:
            await websocket.send_text(event.json_text())
        if sub.lagging:
            await websocket.close(code=4408, reason="too slow: reconnect for a fresh snapshot")
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        sub.close()
