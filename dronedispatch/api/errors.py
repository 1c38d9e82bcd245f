"""Service errors translated to HTTP in one place; every error body is JSON with a reason.

Services raise typed errors (:mod:`dronedispatch.app.errors`) and know nothing of HTTP; the table
:data:`STATUS` maps each kind to a status, the most specific class winning.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dronedispatch.app import errors as app_errors
from dronedispatch.store.repo import NotFound

log = logging.getLogger(__name__)

#: Status of each kind of refusal; a subclass not listed takes its nearest listed base's.
STATUS: dict[type[Exception], int] = {
    app_errors.ServiceError: 400,
    app_errors.UnknownObject: 404,
    app_errors.Conflict: 409,
    app_errors.Gone: 410,
    app_errors.Unprocessable: 422,
    app_errors.VehicleTimeout: 504,
    app_errors.VideoSourceFailed: 503,
    app_errors.DockDoorFault: 503,
    NotFound: 404,
}


def status_of(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


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

    @app.exception_handler(app_errors.ServiceError)
    async def _refused(_: Request, exc: app_errors.ServiceError) -> JSONResponse:
        return _body(status_of(exc), exc.reason, code=exc.code)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _body(status_of(exc), str(exc), code="unknown")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _body(500, f"internal error: {type(exc).__name__}")
