"""The REST API of ``API.md``: uploads go to the blob store and the ingest topic; status comes
from the status topic. It never analyses anything itself, so it stays responsive under load.

This module only wires the parts together: one router per resource (jobs, allowlist,
viewer, operations), the :class:`~ingest_api.publisher.Publisher` that writes to Kafka, and
the topic views that read job status and the allowlist.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from framewise import topics
from framewise.allowlist_records import AllowlistRecords
from framewise.blobstore import BlobStore
from framewise.config import Settings, get_settings
from framewise.journal import Journal
from framewise.kafka import ensure_topics
from framewise.logs import rate_limit_root
from framewise.retention import sweep_blobs
from framewise.topic_view import TopicView
from ingest_api import redaction
from ingest_api.allowlist import allowlist_router
from ingest_api.auth import ApiKeys
from ingest_api.jobs import jobs_router, unavailable
from ingest_api.operations import operations_router
from ingest_api.problems import (
    BodySizeLimit,
    ProblemError,
    http_exception_handler,
    problem_error_handler,
    validation_exception_handler,
)
from ingest_api.publisher import BrokerUnavailable, Publisher
from ingest_api.status_view import StatusView
from ingest_api.viewer import viewer_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    redaction.install()
    rate_limit_root()
    blobs = BlobStore(settings.data_dir)
    journal = Journal.of(settings)
    view = StatusView(settings, journal)
    allowlist = AllowlistRecords(journal)
    allowlist_view = TopicView(settings, topics.ALLOWLIST.name, allowlist.on_record)
    publisher = Publisher(settings, view)

    async def enforce_retention() -> None:
        """Every few minutes: forget expired jobs, delete media older than the retention."""
        max_age = settings.retention_hours * 3600
        while True:
            view.forget(view.expired(max_age))
            await asyncio.to_thread(sweep_blobs, blobs, max_age)
            await asyncio.sleep(min(600.0, max_age / 10))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await ensure_topics(settings)
        await publisher.start()
        await view.start()
        await allowlist_view.start()
        sweeper = asyncio.create_task(enforce_retention())
        try:
            yield
        finally:
            sweeper.cancel()
            await allowlist_view.stop()
            await view.stop()
            await publisher.stop()

    app = FastAPI(
        title="Framewise",
        version="1.0.0",
        description="Public API for asynchronous image and video analysis.",
        lifespan=lifespan,
        redirect_slashes=False,  # a 307 would be built from the client's Host header
    )
    app.state.api_keys = ApiKeys(settings.api_key_hashes)
    app.add_middleware(
        BodySizeLimit,
        limits={"/v1/videos": settings.max_upload_bytes},
        default_limit=settings.max_image_batch_bytes,
    )
    app.add_exception_handler(ProblemError, problem_error_handler)
    app.add_exception_handler(HTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_exception_handler)

    async def broker_unavailable(request, exc: Exception):
        return await problem_error_handler(request, unavailable(settings))

    app.add_exception_handler(BrokerUnavailable, broker_unavailable)
    app.include_router(jobs_router(settings, blobs, view, publisher))
    app.include_router(allowlist_router(settings, blobs, allowlist, allowlist_view, publisher))
    app.include_router(viewer_router(view.find, blobs))
    app.include_router(operations_router(view, publisher))
    return app
