"""Share links: created, listed and revoked by signed-in users (``router``, under /api/v1), and the
link's own page and token-scoped calls (``page_router``), which need no account.

The token appears only in the page's own path and in the calls it makes under ``/share-api/<token>``;
it is no access token of the API. The page is sent with ``Referrer-Policy: no-referrer`` so its
scripts and styles are fetched without it.
"""

from __future__ import annotations

import asyncio
import html
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field

from dronedispatch.api.access import IncidentId, ShareId
from dronedispatch.api.deps import AnyUser, Principal, RuntimeDep, require
from dronedispatch.api.routes.video import SessionDescription
from dronedispatch.app.errors import UnknownObject
from dronedispatch.app.shares import DEFAULT_HOURS, MAX_HOURS, ShareGone
from dronedispatch.store.models import Share

router = APIRouter(tags=["share links"])
page_router = APIRouter(tags=["share links"], include_in_schema=False)

#: operator or pilot (and admin) create links; the same revoke them
Sharer = Annotated[Principal, Depends(require("operator", "pilot"))]
#: a link token as it appears in a path (secrets.token_urlsafe(32) is 43 characters); anything else
#: matches no link and gets the "does not exist" answer
Token = Annotated[str, PathParam(max_length=200)]
NO_REFERRER = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


class ShareRequest(BaseModel):
    hours: float = Field(default=DEFAULT_HOURS, gt=0, le=MAX_HOURS, description="Lifetime of the link, hours")


class ShareCreated(BaseModel):
    id: str
    url: str = Field(description="The link's path (holds the token; shown only now)")
    expires_at: datetime


class SharePublic(BaseModel):
    id: str
    incident_id: int
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None

    @classmethod
    def of(cls, s: Share) -> SharePublic:
        return cls(id=s.id, incident_id=s.incident_id, created_by=s.created_by, created_at=s.created_at,
                   expires_at=s.expires_at, revoked_at=s.revoked_at, revoked_by=s.revoked_by)  # fmt: skip


@router.post(
    "/incidents/{incident_id}/share",
    response_model=ShareCreated,
    status_code=status.HTTP_201_CREATED,
    summary="A view-only link to the incident for crews in the field (expires; default 2 h, at most 24 h)",
)
async def create_share(
    runtime: RuntimeDep, principal: Sharer, incident_id: IncidentId, body: ShareRequest | None = None
) -> ShareCreated:
    hours = (body or ShareRequest()).hours
    new = await asyncio.to_thread(runtime.shares.create, incident_id, hours, principal.username)
    return ShareCreated(id=new.share.id, url=new.url, expires_at=new.share.expires_at)


@router.get("/incidents/{incident_id}/shares", response_model=list[SharePublic], summary="The incident's links")
async def list_shares(runtime: RuntimeDep, _: AnyUser, incident_id: IncidentId) -> list[SharePublic]:
    return [SharePublic.of(s) for s in await asyncio.to_thread(runtime.shares.list, incident_id)]


@router.delete("/shares/{share_id}", response_model=SharePublic, summary="Revoke a link at once")
async def revoke_share(runtime: RuntimeDep, principal: Sharer, share_id: ShareId) -> SharePublic:
    return SharePublic.of(await runtime.shares.revoke(share_id, principal.username))


# -- the link -----------------------------------------------------------------------------------
@page_router.get("/share/{token}", response_class=HTMLResponse)
async def share_page(runtime: RuntimeDep, token: Token) -> Response:
    try:
        await asyncio.to_thread(runtime.shares.open, token)
    except ShareGone as exc:
        return _refusal(410, exc.reason, exc.why)
    except UnknownObject:
        return _refusal(404, "This link does not exist.", "unknown")
    page = Path(runtime.settings.web_dir) / "share.html"
    return FileResponse(page, media_type="text/html", headers=NO_REFERRER)


@page_router.get("/share/{token}/", include_in_schema=False)
async def share_page_slash(runtime: RuntimeDep, token: Token) -> Response:
    return await share_page(runtime, token)


@page_router.get("/share-api/{token}")
async def share_state(runtime: RuntimeDep, token: Token) -> dict[str, Any]:
    return await asyncio.to_thread(runtime.shares.state, token)


@page_router.get("/share-api/{token}/districts")
async def share_districts(runtime: RuntimeDep, token: Token) -> dict[str, Any]:
    await asyncio.to_thread(runtime.shares.open, token)
    return runtime.districts


@page_router.post("/share-api/{token}/video/offer", response_model=SessionDescription)
async def share_video_offer(runtime: RuntimeDep, token: Token, body: SessionDescription) -> SessionDescription:
    sdp, type_ = await runtime.shares.offer(token, body.sdp, body.type)
    return SessionDescription(sdp=sdp, type=type_)


#: the refusal in Korean too, beneath the English (the city's crews)
_KO = {
    "expired": "이 링크는 만료되었습니다. 필요하면 상황실에 새 링크를 요청하세요.",
    "revoked": "이 링크는 취소되었습니다. 필요하면 상황실에 새 링크를 요청하세요.",
    "unknown": "존재하지 않는 링크입니다. 상황실에 새 링크를 요청하세요.",
}


def _refusal(code: int, reason: str, why: str) -> HTMLResponse:
    text = html.escape(reason)
    more = "" if why == "unknown" else "The link no longer shows anything. "
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dronedispatch · {text}</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/share.css"></head>
<body class="refused" data-share="{why}"><main class="refusal"><h1>{text}</h1>
<p>{more}Ask the operations centre for a new link if you still need it.</p>
<p lang="ko">{_KO[why]}</p>
</main></body></html>
"""
    return HTMLResponse(body, status_code=code, headers=NO_REFERRER)
