"""Request bodies read with a size limit: refused with 413 before they are held whole.

A body announced larger than the limit (Content-Length) is refused before a byte of it is read;
one sent without a length (chunked) is read piece by piece and refused as soon as it passes the
limit. Either way no more than the limit is ever held in memory for one request.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, status


def _too_large(size: str, limit: int) -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"the body is {size} bytes; the limit is {limit}")


def check_declared_length(request: Request, limit: int) -> None:
    """413 for a body whose Content-Length is over ``limit``; 400 for a Content-Length that is not a number."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit():
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Content-Length is not a number")
    if int(declared) > limit:
        raise _too_large(declared, limit)


async def read_limited(request: Request, limit: int) -> bytes:
    """The request's body, at most ``limit`` bytes (413 past it, whatever Content-Length said)."""
    check_declared_length(request, limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(f"over {limit}", limit)
    return bytes(body)
