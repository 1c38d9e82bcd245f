"""Wiring: the FastAPI app factory and `dronedispatch serve`.

``create_app(settings)`` builds the app; its lifespan starts the :class:`Runtime` (store, link,
planner, ingest) and stops it in reverse order. Nothing is created at import time.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from dronedispatch.api.errors import install_error_handlers
from dronedispatch.api.headers import SecurityHeaders
from dronedispatch.api.routes import (
    admin,
    assignments,
    audit,
    auth,
    cameras,
    catalog,
    cluster,
    coverage,
    events,
    incidents,
    ingest,
    ingest_keys,
    missions,
    public,
    records,
    scenarios,
    shares,
    stats,
    video,
)
from dronedispatch.cluster.node import default_node_id
from dronedispatch.runtime import Runtime
from dronedispatch.settings import Settings, StartupError
from dronedispatch.store.db import make_engine

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    rt = runtime or Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    app = FastAPI(
        title="dronedispatch",
        version="0.1.0",
        description="Drone dispatch for a city operations centre: incidents, drones, missions, live video.",
        lifespan=lifespan,
    )
    app.state.runtime = rt
    install_error_handlers(app)
    app.add_middleware(SecurityHeaders)  # CSP, nosniff, no-referrer, no framing on every response
    api = APIRouter(prefix=API_PREFIX)
    for module in (
        auth, incidents, assignments, missions, catalog, ingest, video, admin, audit, events, scenarios, cluster,
        stats, cameras, records, coverage,
    ):  # fmt: skip
        api.include_router(module.router)
    api.include_router(shares.router)
    api.include_router(ingest_keys.router)
    app.include_router(api)
    app.include_router(public.router)  # /public/flights: 404 unless DD_PUBLIC_FLIGHT_LOG is true
    app.include_router(shares.page_router)  # /share/<token> and /share-api/<token>: the link alone, no account
    app.include_router(_system_router(rt))
    if settings.web_dir.is_dir():
        app.mount("/ui", StaticFiles(directory=settings.web_dir, html=True), name="ui")
    return app


def _system_router(rt: Runtime) -> APIRouter:
    router = APIRouter(tags=["system"])
    registry = CollectorRegistry()
    drones = Gauge("dronedispatch_drones", "Drones by state", ["state"], registry=registry)
    link_up = Gauge("dronedispatch_vehicles_connected", "Vehicles heard within the silence limit", registry=registry)
    missions = Gauge("dronedispatch_missions_active", "Missions in flight or being launched", registry=registry)
    subscribers = Gauge("dronedispatch_event_subscribers", "Connected event subscribers", registry=registry)
    published = Gauge("dronedispatch_events_published", "Events published since start", registry=registry)
    registry.register(rt.ingest_stats)  # type: ignore[arg-type]
    if rt.onvif is not None:
        registry.register(rt.onvif)  # type: ignore[arg-type]

    @router.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @router.get("/healthz", summary="Liveness and the state of each part")
    def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "vehicles": len(list(rt.vehicles.vehicles())),
            "database": rt.engine.dialect.name,
            "node": rt.node_id,
            "started_at": rt.started_at.isoformat(),
            **({"onvif_cameras": rt.onvif.snapshot()} if rt.onvif is not None else {}),
            **({"docks": rt.docks.snapshot()} if rt.docks.managed else {}),
        }

    @router.get("/metrics", summary="Prometheus metrics")
    def metrics() -> Response:
        counts: dict[str, int] = {}
        for entry in rt.registry:
            state = rt.registry.state_of(entry).value
            counts[state] = counts.get(state, 0) + 1
        drones.clear()
        for state, n in counts.items():
            drones.labels(state=state).set(n)
        link_up.set(sum(1 for v in rt.vehicles.vehicles() if not v.health.lost))
        missions.set(len(rt.store.active_missions()))
        bus = rt.bus.stats()
        subscribers.set(bus.subscribers)
        published.set(bus.published)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def preflight(settings: Settings) -> None:
    """Reach the database and the bus before starting, so a node that cannot says so in one line."""
    engine = make_engine(settings.database_url)
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StartupError(f"the database in DD_DATABASE_URL cannot be reached: {reason}") from None
    finally:
        engine.dispose()
    if settings.bus_url:
        host, _, port = settings.bus_url.removeprefix("nats://").rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
        except OSError as exc:
            raise StartupError(
                f"the NATS server in DD_BUS_URL ({settings.bus_url}) cannot be reached: {exc.strerror or exc}"
            ) from None


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> None:
    """Run the service; with ``tls_cert`` and ``tls_key`` (PEM files) over HTTPS and WSS only."""
    preflight(settings)
    if settings.secret_key_generated:  # only possible on SQLite: Settings refuses it for a shared database
        log.warning("DD_SECRET_KEY is not set: tokens signed with a random key die with this process")

    settings = settings.model_copy(update={"node_id": settings.node_id or default_node_id(port)})
    scheme = "https" if tls_cert else "http"
    runtime = Runtime(settings, http_url=f"{scheme}://{host}:{port}")
    uvicorn.run(
        create_app(settings, runtime), host=host, port=port, log_level="info", ws="websockets-sansio",
        ssl_certfile=tls_cert, ssl_keyfile=tls_key,
    )  # fmt: skip
