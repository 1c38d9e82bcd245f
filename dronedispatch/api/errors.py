"""Service errors translated to HTTP in one place; every error body is JSON with a reason.

Services raise typed errors (:mod:`dronedispatch.app.errors`) and know nothing of HTTP; the table
:data:`STATUS` maps each kind to a status, the most specific class winning.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dronedispatch.app import errors as app_errors
from dronedispatch.store.availability import database_unavailable
from dronedispatch.store.repo import NotFound

log = logging.getLogger(__name__)

#: Seconds a client is asked to wait before retrying a request refused because the database is down.
RETRY_AFTER_S = 5

#: Status of each kind of refusal; a subclass not listed takes its nearest listed base's.
STATUS: dict[type[Exception], int] = {
    app_errors.ServiceError: 400,
    app_errors.Forbidden: 403,
    app_errors.UnknownObject: 404,
    app_errors.Conflict: 409,
    app_errors.Gone: 410,
    app_errors.Unprocessable: 422,
    app_errors.VehicleTimeout: 504,
    app_errors.VideoSourceFailed: 503,
    app_errors.DockDoorFault: 503,
    app_errors.ServiceUnavailable: 503,
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
        response = _body(status_of(exc), exc.reason, code=exc.code)
        if isinstance(exc, app_errors.ServiceUnavailable):
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    @app.exception_handler(SQLAlchemyError)
    async def _store_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        # the database being down is not the request's fault nor a bug: 503 with the reason, at once
        if database_unavailable(exc):
            log.warning("%s %s: the database is unavailable: %s", request.method, request.url.path,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)  # fmt: skip
            return await _refused(request, app_errors.DatabaseUnavailable(
                "the database is unavailable; nothing was changed, try again shortly"))  # fmt: skip
        return await _unexpected(request, exc)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _body(status_of(exc), str(exc), code="unknown")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _body(500, f"internal error: {type(exc).__name__}")
