"""The job endpoints of ``API.md``: submit a video or an image batch, read a job, latency."""

from __future__ import annotations

import asyncio
import os
import statistics
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, BinaryIO, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from framewise import keys
from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.kafka import to_bytes
from framewise.media import MediaError, probe_video
from framewise.metrics import JOBS_REFUSED
from ingest_api.auth import Owner
from ingest_api.problems import ProblemError, problem_responses
from ingest_api.publisher import BrokerUnavailable, Publisher
from ingest_api.status_view import StatusView
from schemas.api import (
    ImageBatchJob,
    ImageBatchRequest,
    JobAccepted,
    JobStatus,
    LatencyReport,
    VideoJob,
    WebhookConfig,
)
from schemas.messages import ImageSource, IngestRequest
from stages.decode.planner import decode_base64_image

VIDEO_TYPES = ("application/octet-stream", "video/")
BODY_CHUNK_BYTES = 256 * 2**10  # a large job body is streamed from its file in these
MAX_PROCESSING_TIME_S = 7 * 24 * 3600
MaxProcessingTime = Annotated[
    str | None,
    Header(
        alias="Max-Processing-Time",
        pattern=r"^[0-9]{1,7}$",
        description="whole seconds, digits only, at most 604800 (7 days); 0: no limit; "
        "absent: the server default",
    ),
]


def jobs_router(
    settings: Settings, blobs: BlobStore, view: StatusView, publisher: Publisher
) -> APIRouter:
    router = APIRouter()

    def admit() -> None:
        """Refuse work the pipeline cannot take now, before reading a body: while the broker
        is unreachable (503), or beyond the queue depth (429)."""
        if not publisher.broker_ok:
            raise unavailable(settings)
        if len(view.active) >= settings.max_active_jobs:
            JOBS_REFUSED.inc()
            raise ProblemError(
                429,
                "Too Many Requests",
                f"{len(view.active)} jobs are queued or processing; retry later",
                headers={"Retry-After": str(settings.retry_after_s)},
            )

    async def submit(queued: bytes, ingest: IngestRequest, owner: str | None) -> None:
        """Publish an accepted job; when the broker does not take it, nothing is kept."""
        try:
            await publisher.submit(queued, ingest, owner)
        except BrokerUnavailable as exc:
            for prefix in keys.transient_prefixes(ingest.job_id):
                blobs.delete_prefix(prefix)
            raise unavailable(settings) from exc

    def limit_of(header: str | None) -> int:
        if header is None:
            return settings.default_max_processing_time_s
        if int(header) > MAX_PROCESSING_TIME_S:
            raise ProblemError(
                400, "Bad Request", f"Max-Processing-Time is at most {MAX_PROCESSING_TIME_S} s"
            )
        return int(header)

    @router.post(
        "/v1/videos",
        status_code=202,
        response_model=JobAccepted,
        responses=problem_responses(400, 413, 415, 429, 503),
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
        job_id = keys.new_job_id("video")
        key = keys.uploaded_video(job_id)
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
            blobs.delete_prefix(keys.transient_prefixes(job_id)[0])
            raise ProblemError(415, "Unsupported Media Type", exc.message) from exc
        except BaseException:
            blobs.delete_prefix(keys.transient_prefixes(job_id)[0])
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
        await submit(to_bytes(queued), ingest, owner)
        response.headers["Location"] = f"/v1/videos/{job_id}"
        return JobAccepted(job_id=job_id)

    @router.post(
        "/v1/images",
        status_code=202,
        response_model=JobAccepted,
        responses=problem_responses(400, 413, 422, 429, 503),
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
        job_id = keys.new_job_id("image")
        sources = []
        for i, (image, data) in enumerate(zip(body.images, decoded, strict=True)):
            key = keys.uploaded_image(job_id, i)
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
        await submit(to_bytes(queued), ingest, owner)
        response.headers["Location"] = f"/v1/images/{job_id}"
        return JobAccepted(job_id=job_id)

    async def job_response(job_id: str, prefix: str, owner: str | None) -> Response:
        body = await view.find(job_id, prefix, owner)
        if isinstance(body, bytes):
            return Response(content=body, media_type="application/json")
        try:  # opened now: a newer body replaces the file, and this one stays readable
            handle = body.open("rb")
        except FileNotFoundError:  # forgotten since (retention)
            raise ProblemError(404, "Not Found", f"no job {job_id!r}") from None
        return StreamingResponse(
            file_chunks(handle),
            media_type="application/json",
            headers={"Content-Length": str(os.fstat(handle.fileno()).st_size)},
        )

    @router.get(
        "/v1/videos/{job_id}",
        response_model=VideoJob,
        response_model_exclude_none=True,
        responses=problem_responses(404),
        summary="Status and result of a video job",
    )
    async def get_video(job_id: str, owner: Owner) -> Response:
        return await job_response(job_id, "video_", owner)

    @router.get(
        "/v1/images/{job_id}",
        response_model=ImageBatchJob,
        response_model_exclude_none=True,
        responses=problem_responses(404),
        summary="Status and per-item results of an image batch",
    )
    async def get_images(job_id: str, owner: Owner) -> Response:
        return await job_response(job_id, "image_batch_", owner)

    @router.get(
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

    return router


def file_chunks(handle: BinaryIO) -> Iterator[bytes]:
    """``handle``'s bytes in chunks, then closed (Starlette reads them on a worker thread)."""
    with handle:
        while chunk := handle.read(BODY_CHUNK_BYTES):
            yield chunk


def unavailable(settings: Settings) -> ProblemError:
    return ProblemError(
        503,
        "Service Unavailable",
        "the message broker is unreachable; nothing was accepted, retry later",
        headers={"Retry-After": str(settings.retry_after_s)},
    )


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
