"""Operations endpoints: Prometheus metrics and a health check that reflects the broker."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest_api.publisher import Publisher
from ingest_api.status_view import StatusView


def operations_router(view: StatusView, publisher: Publisher) -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/healthz", include_in_schema=False)
    async def health() -> JSONResponse:
        """200 while the broker answers, 503 while it does not (the API then refuses work)."""
        ok = publisher.broker_ok = await publisher.broker_reachable()
        body = {"status": "ok" if ok else "degraded", "broker": "ok" if ok else "unreachable"}
        return JSONResponse({**body, "jobs_known": len(view.jobs)}, status_code=200 if ok else 503)

    return router
