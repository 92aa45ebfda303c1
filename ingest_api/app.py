"""The REST API of ``API.md``: uploads go to the blob store and the ingest topic; status comes
from the status topic. It never analyses anything itself, so it stays responsive under load."""

from __future__ import annotations

import asyncio
import secrets
import statistics
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Literal

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from framewise import topics
from framewise.allowlist_records import AllowlistRecords
from framewise.blobstore import BlobStore
from framewise.config import Settings, get_settings
from framewise.kafka import ensure_topics, to_bytes
from framewise.media import MediaError, probe_video
from framewise.metrics import JOBS_ACCEPTED, JOBS_REFUSED
from framewise.retention import expired_jobs, sweep_blobs
from framewise.topic_view import TopicView
from ingest_api import redaction
from ingest_api.auth import ApiKeys, Owner
from ingest_api.problems import (
    BodySizeLimit,
    ProblemError,
    http_exception_handler,
    problem_error_handler,
    problem_responses,
    validation_exception_handler,
)
from ingest_api.status_view import OWNER_HEADER, StatusView
from ingest_api.viewer import viewer_router
from schemas.api import (
    AllowlistEnrollRequest,
    AllowlistIdentity,
    AllowlistListing,
    ImageBatchJob,
    ImageBatchRequest,
    JobAccepted,
    JobStatus,
    LatencyReport,
    VideoJob,
    WebhookConfig,
)
from schemas.messages import AllowlistEnrollment, AllowlistRecord, ImageSource, IngestRequest
from stages.decode.planner import decode_base64_image

VIDEO_TYPES = ("application/octet-stream", "video/")
MaxProcessingTime = Annotated[
    int | None,
    Header(
        alias="Max-Processing-Time",
        ge=0,
        description="seconds; 0: no limit; absent: the server default",
    ),
]


def new_job_id(kind: Literal["video", "image_batch"]) -> str:
    return f"{kind}_{secrets.token_urlsafe(16)}"  # 128 random bits, URL-safe


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    redaction.install()
    blobs = BlobStore(settings.data_dir)
    view = StatusView(settings)
    allowlist = AllowlistRecords()
    allowlist_view = TopicView(settings, topics.ALLOWLIST.name, allowlist.on_record)
    producer_box: dict[str, AIOKafkaProducer] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await ensure_topics(settings)
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap,
            max_request_size=settings.max_message_bytes,
            acks="all",
            enable_idempotence=False,
        )
        await producer.start()
        producer_box["p"] = producer
        await view.start()
        await allowlist_view.start()
        sweeper = asyncio.create_task(enforce_retention())
        try:
            yield
        finally:
            sweeper.cancel()
            await allowlist_view.stop()
            await view.stop()
            await producer.stop()

    app = FastAPI(
        title="Framewise",
        version="1.0.0",
        description="Public API for asynchronous image and video analysis.",
        lifespan=lifespan,
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

    async def enforce_retention() -> None:
        """Every few minutes: forget expired jobs, delete media older than the retention."""
        max_age = settings.retention_hours * 3600
        while True:
            view.forget(expired_jobs(view.bodies(), max_age))
            await asyncio.to_thread(sweep_blobs, blobs, max_age)
            await asyncio.sleep(min(600.0, max_age / 10))

    def admit() -> None:
        """Backpressure: refuse work beyond what the pipeline holds, before reading a body."""
        if len(view.active) >= settings.max_active_jobs:
            JOBS_REFUSED.inc()
            raise ProblemError(
                429,
                "Too Many Requests",
                f"{len(view.active)} jobs are queued or processing; retry later",
                headers={"Retry-After": str(settings.retry_after_s)},
            )

    async def publish(
        job_id: str, queued_body: bytes, request: IngestRequest, owner: str | None
    ) -> None:
        producer = producer_box["p"]
        key = job_id.encode()
        headers = [(OWNER_HEADER, owner.encode())] if owner else None
        view.owners[job_id] = owner or ""
        JOBS_ACCEPTED.labels(request.media_type).inc()
        view.apply(job_id, queued_body)
        await producer.send_and_wait(topics.JOB_STATUS.name, queued_body, key=key, headers=headers)
        await producer.send_and_wait(topics.INGEST.name, to_bytes(request), key=key)

    def limit_of(header: int | None) -> int:
        return settings.default_max_processing_time_s if header is None else header

    @app.post(
        "/v1/videos",
        status_code=202,
        response_model=JobAccepted,
        responses=problem_responses(400, 413, 415),
        summary="Submit a video for analysis",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "video/*": {"schema": {"type": "string", "format": "binary"}},
                },
            }
        },
    )
    async def submit_video(
        request: Request,
        response: Response,
        owner: Owner,
        max_processing_time: MaxProcessingTime = None,
        webhook_url: Annotated[str | None, Query(alias="webhook.url")] = None,
        webhook_secret: Annotated[str | None, Query(alias="webhook.secret")] = None,
    ) -> JobAccepted:
        admit()
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not content_type.startswith(VIDEO_TYPES):
            raise ProblemError(
                415,
                "Unsupported Media Type",
                "send the video as application/octet-stream or video/*",
            )
        webhook = _webhook(webhook_url, webhook_secret)
        job_id = new_job_id("video")
        key = f"uploads/{job_id}/video"
        size = 0
        try:
            with blobs.open_writer(key) as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    out.write(chunk)
            if size == 0:
                raise ProblemError(400, "Empty body", "the request body holds no video")
            # Probed here only to refuse an undecodable upload at once (415).
            await asyncio.to_thread(probe_video, blobs.path(key), settings.max_pixels)
        except MediaError as exc:
            blobs.delete_prefix(f"uploads/{job_id}")
            raise ProblemError(415, "Unsupported Media Type", exc.message) from exc
        except BaseException:
            blobs.delete_prefix(f"uploads/{job_id}")
            raise
        now = datetime.now(UTC)
        queued = VideoJob(
            job_id=job_id, status=JobStatus.queued, created_at=now, updated_at=now, progress=0.0
        )
        ingest = IngestRequest(
            job_id=job_id,
            media_type="video",
            video_blob_key=key,
            webhook=webhook,
            max_processing_time_s=limit_of(max_processing_time),
            submitted_at=now,
            owner=owner,
        )
        await publish(job_id, to_bytes(queued), ingest, owner)
        response.headers["Location"] = f"/v1/videos/{job_id}"
        return JobAccepted(job_id=job_id)

    @app.post(
        "/v1/images",
        status_code=202,
        response_model=JobAccepted,
        responses=problem_responses(400, 413, 422),
        summary="Submit a batch of base64 images for analysis",
    )
    async def submit_images(
        body: ImageBatchRequest,
        response: Response,
        owner: Owner,
        max_processing_time: MaxProcessingTime = None,
    ) -> JobAccepted:
        admit()
        if len(body.images) > settings.max_images_per_batch:
            raise ProblemError(
                413, "Too many images", f"at most {settings.max_images_per_batch} images per batch"
            )
        seen: set[str] = set()
        decoded: list[bytes] = []
        for i, image in enumerate(body.images):
            if image.external_id in seen:
                raise ProblemError(
                    400,
                    "Duplicate external_id",
                    f"images[{i}].external_id {image.external_id!r} is repeated",
                    errors=[
                        {
                            "loc": ["body", "images", i, "external_id"],
                            "msg": "duplicate external_id",
                        }
                    ],
                )
            seen.add(image.external_id)
            try:
                decoded.append(decode_base64_image(image.data_base64))
            except ValueError as exc:
                raise ProblemError(
                    400,
                    "Invalid image data",
                    f"images[{i}] (external_id {image.external_id!r}): {exc}",
                    errors=[{"loc": ["body", "images", i, "data_base64"], "msg": str(exc)}],
                ) from exc
        job_id = new_job_id("image_batch")
        sources = []
        for i, (image, data) in enumerate(zip(body.images, decoded, strict=True)):
            key = f"uploads/{job_id}/{i:05d}"
            await asyncio.to_thread(blobs.put_bytes, key, data)
            sources.append(ImageSource(external_id=image.external_id, blob_key=key))
        now = datetime.now(UTC)
        queued = ImageBatchJob(
            job_id=job_id,
            status=JobStatus.queued,
            created_at=now,
            updated_at=now,
            progress=0.0,
            items=[{"external_id": s.external_id, "status": JobStatus.queued} for s in sources],
        )
        ingest = IngestRequest(
            job_id=job_id,
            media_type="image",
            images=sources,
            webhook=body.webhook,
            max_processing_time_s=limit_of(max_processing_time),
            submitted_at=now,
            owner=owner,
        )
        await publish(job_id, to_bytes(queued), ingest, owner)
        response.headers["Location"] = f"/v1/images/{job_id}"
        return JobAccepted(job_id=job_id)

    async def find_job(job_id: str, prefix: str, owner: str | None) -> bytes:
        """The job's body; another key's job is reported exactly like one that does not
        exist."""
        body = view.jobs.get(job_id) if job_id.startswith(prefix) else None
        if body is None and job_id.startswith(prefix):
            await view.caught_up()
            body = view.jobs.get(job_id)
        if body is None or (owner is not None and view.owners.get(job_id, "") not in ("", owner)):
            raise ProblemError(404, "Not Found", f"no job {job_id!r}")
        return body

    async def job_response(job_id: str, prefix: str, owner: str | None) -> Response:
        body = await find_job(job_id, prefix, owner)
        return Response(content=body, media_type="application/json")

    app.include_router(viewer_router(find_job, blobs))

    @app.get(
        "/v1/videos/{job_id}",
        response_model=VideoJob,
        response_model_exclude_none=True,
        responses=problem_responses(404),
        summary="Status and result of a video job",
    )
    async def get_video(job_id: str, owner: Owner) -> Response:
        return await job_response(job_id, "video_", owner)

    @app.get(
        "/v1/images/{job_id}",
        response_model=ImageBatchJob,
        response_model_exclude_none=True,
        responses=problem_responses(404),
        summary="Status and per-item results of an image batch",
    )
    async def get_images(job_id: str, owner: Owner) -> Response:
        return await job_response(job_id, "image_batch_", owner)

    @app.get(
        "/v1/latency",
        response_model=LatencyReport,
        responses=problem_responses(400),
        summary="Observed processing time per media unit over recent finished jobs",
    )
    async def latency(media_type: Literal["video", "image"], owner: Owner) -> LatencyReport:
        samples = view.latency[media_type]
        return LatencyReport(
            media_type=media_type,
            unit="second" if media_type == "video" else "image",
            latency_ms_per_unit=round(statistics.fmean(samples), 3) if samples else None,
            samples=len(samples),
        )

    def identity_body(record: AllowlistRecord) -> AllowlistIdentity:
        pack = record.face_pack or ("insightface" if record.embeddings else None)
        stale = record.status == "enrolled" and pack != settings.face_pack
        return AllowlistIdentity(
            identity_id=record.identity_id,
            label=record.label,
            status="needs_reenrollment" if stale else record.status,
            faces=len(record.embeddings),
            face_pack=pack,
            created_at=record.created_at,
            error=(
                f"enrolled with the {pack} face pack; the active pack is {settings.face_pack}: "
                "enrol this identity again"
                if stale
                else record.error
            ),
        )

    @app.post(
        "/v1/allowlist",
        status_code=202,
        response_model=AllowlistIdentity,
        response_model_exclude_none=True,
        responses=problem_responses(400, 413, 422),
        summary="Enroll a person (images of one face) on the allowlist",
    )
    async def enroll(
        body: AllowlistEnrollRequest, response: Response, owner: Owner
    ) -> AllowlistIdentity:
        images = []
        for i, image in enumerate(body.images):
            try:
                images.append(decode_base64_image(image.data_base64))
            except ValueError as exc:
                raise ProblemError(400, "Invalid image data", f"images[{i}]: {exc}") from exc
        identity_id = f"identity_{secrets.token_urlsafe(16)}"
        keys = []
        for i, data in enumerate(images):
            key = f"allowlist/{identity_id}/{i:03d}"
            await asyncio.to_thread(blobs.put_bytes, key, data)
            keys.append(key)
        record = AllowlistRecord(
            identity_id=identity_id,
            label=body.label,
            status="pending",
            created_at=datetime.now(UTC),
            owner=owner,
        )
        producer = producer_box["p"]
        allowlist.apply(identity_id, record)
        await producer.send_and_wait(
            topics.ALLOWLIST.name, to_bytes(record), key=identity_id.encode()
        )
        request = AllowlistEnrollment(
            identity_id=identity_id, label=body.label, blob_keys=keys, owner=owner
        )
        await producer.send_and_wait(
            topics.ALLOWLIST_REQUESTS.name, to_bytes(request), key=identity_id.encode()
        )
        response.headers["Location"] = f"/v1/allowlist/{identity_id}"
        return identity_body(record)

    @app.get(
        "/v1/allowlist",
        response_model=AllowlistListing,
        response_model_exclude_none=True,
        summary="Enrolled allowlist identities",
    )
    async def list_allowlist(owner: Owner) -> AllowlistListing:
        mine = [r for r in allowlist.records() if r.owner == owner]
        records = sorted(mine, key=lambda r: r.created_at)
        return AllowlistListing(identities=[identity_body(r) for r in records])

    async def known_identity(identity_id: str, owner: str | None) -> AllowlistRecord:
        """The caller's identity; another key's is reported like one that does not exist."""
        record = allowlist.get(identity_id)
        if record is None:
            await allowlist_view.caught_up()
            record = allowlist.get(identity_id)
        if record is None or record.owner != owner:
            raise ProblemError(404, "Not Found", f"no allowlist identity {identity_id!r}")
        return record

    @app.get(
        "/v1/allowlist/{identity_id}",
        response_model=AllowlistIdentity,
        response_model_exclude_none=True,
        responses=problem_responses(404),
    )
    async def get_identity(identity_id: str, owner: Owner) -> AllowlistIdentity:
        return identity_body(await known_identity(identity_id, owner))

    @app.delete(
        "/v1/allowlist/{identity_id}",
        status_code=204,
        responses=problem_responses(404),
        summary="Remove an identity",
    )
    async def remove_identity(identity_id: str, owner: Owner) -> Response:
        await known_identity(identity_id, owner)
        allowlist.apply(identity_id, None)
        await producer_box["p"].send_and_wait(topics.ALLOWLIST.name, None, key=identity_id.encode())
        return Response(status_code=204)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def health() -> dict:
        return {"status": "ok", "jobs_known": len(view.jobs)}

    return app


def _webhook(url: str | None, secret: str | None) -> WebhookConfig | None:
    if url is None:
        if secret is not None:
            raise ProblemError(400, "Bad Request", "webhook.secret requires webhook.url")
        return None
    try:
        return WebhookConfig(url=url, secret=secret)
    except ValidationError as exc:
        raise ProblemError(
            400, "Bad Request", f"invalid webhook: {exc.errors()[0]['msg']}", errors=_errors(exc)
        ) from exc


def _errors(exc: ValidationError) -> list[dict]:
    return [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
