"""Turning an ingest request into a plan: which stages run, which segments are decoded where.

Pure apart from reading and writing the blob store, so it is tested without Kafka.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import UTC, datetime

from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.media import MediaError, probe_video
from schemas.api import ErrorCode, JobError
from schemas.messages import DecodeTask, IngestRequest, JobPlanned, SegmentDecoded
from stages.registry import enabled_stages


def decode_base64_image(text: str) -> bytes:
    """Strict base64 (standard alphabet, padding checked); a ``data:`` prefix is refused."""
    if text.lstrip().lower().startswith("data:"):
        raise ValueError("data_base64 must be raw base64, without a data: URI prefix")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"data_base64 is not valid base64: {exc}") from exc


def _deadline(request: IngestRequest, submitted_at: datetime) -> float | None:
    if request.max_processing_time_s <= 0:
        return None
    return submitted_at.timestamp() + request.max_processing_time_s


def plan(
    request: IngestRequest, blobs: BlobStore, settings: Settings
) -> tuple[JobPlanned, list[DecodeTask], list[SegmentDecoded]]:
    """The job's plan, its decode tasks and the items that already failed (bad image data).

    Raises :class:`MediaError` when the job as a whole cannot run (the video is unreadable).
    """
    submitted_at = request.submitted_at or datetime.now(UTC)
    deadline = _deadline(request, submitted_at)
    specs = enabled_stages(settings, request.media_type)
    stage_names = [s.name for s in specs]
    profiles = sorted({s.profile for s in specs})
    common = dict(
        job_id=request.job_id,
        media_type=request.media_type,
        stages=stage_names,
        profiles=profiles,
        deadline=deadline,
    )
    failed: list[SegmentDecoded] = []
    tasks: list[DecodeTask] = []
    if request.media_type == "video":
        key = request.video_blob_key
        assert key is not None
        if not blobs.exists(key):
            raise MediaError(ErrorCode.unsupported_media, f"blob {key!r} is not in the blob store")
        probe = probe_video(blobs.path(key), settings.max_pixels)
        n_segments = max(1, math.ceil(probe.duration_seconds / settings.segment_seconds))
        for i in range(n_segments):
            last = i == n_segments - 1
            tasks.append(
                DecodeTask(
                    blob_key=key,
                    segment_index=i,
                    start_s=i * settings.segment_seconds,
                    end_s=None if last else (i + 1) * settings.segment_seconds,
                    **common,
                )
            )
        external_ids: list[str] = []
    else:
        assert request.images is not None
        probe = None
        n_segments = len(request.images)
        external_ids = [image.external_id for image in request.images]
        for i, image in enumerate(request.images):
            key = image.blob_key or f"uploads/{request.job_id}/{i:05d}"
            error = None
            if image.data_base64 is not None:
                try:
                    blobs.put_bytes(key, decode_base64_image(image.data_base64))
                except ValueError as exc:
                    error = JobError(code=ErrorCode.unsupported_media, message=str(exc))
            elif not blobs.exists(key):
                error = JobError(
                    code=ErrorCode.unsupported_media, message=f"blob {key!r} is not in the store"
                )
            if error:
                failed.append(
                    SegmentDecoded(job_id=request.job_id, segment_index=i, batches={}, error=error)
                )
            else:
                tasks.append(DecodeTask(blob_key=key, segment_index=i, **common))
    planned = JobPlanned(
        job_id=request.job_id,
        media_type=request.media_type,
        stages=stage_names,
        n_segments=n_segments,
        external_ids=external_ids,
        probe=probe,
        webhook=request.webhook,
        deadline=deadline,
        submitted_at=submitted_at,
        decode_tasks=tasks,
    )
    return planned, tasks, failed
