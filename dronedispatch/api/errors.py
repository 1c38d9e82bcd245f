"""Domain and link errors translated to HTTP in one place; every error body is JSON with a reason."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dronedispatch.dispatch import DispatchError
from dronedispatch.store.repo import NotFound

log = logging.getLogger(__name__)


def _body(status: int, reason: str, **extra: object) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": reason, **extra})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = _body(exc.status_code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return _body(422, f"{where}: {first['msg']}" if where else str(first["msg"]), errors=errors)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _body(404, str(exc))

    @app.exception_handler(DispatchError)
    async def _dispatch(_: Request, exc: DispatchError) -> JSONResponse:
        return _body(exc.status, exc.reason, code=exc.code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _body(500, f"internal error: {type(exc).__name__}")
