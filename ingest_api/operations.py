"""Operations endpoints: Prometheus metrics and a health check."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest_api.status_view import StatusView


def operations_router(view: StatusView) -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/healthz", include_in_schema=False)
    async def health() -> dict:
        return {"status": "ok", "jobs_known": len(view.jobs)}

    return router
