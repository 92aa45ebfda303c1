"""Turning an ingest request into a plan: which stages run, which segments are decoded where.

Pure apart from reading and writing the blob store, so it is tested without Kafka.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from framewise import keys
from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.media import MediaError, occupied_segments, probe_video
from schemas.api import ErrorCode, JobError
from schemas.messages import DecodeTask, IngestRequest, JobPlanned, SegmentDecoded, VideoProbe
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


def check_complete(probe: VideoProbe, packets: int) -> None:
    """A file that holds fewer frames than its header declares was cut short (an interrupted
    upload or copy): it fails as ``corrupt_media`` rather than finish as if it were whole."""
    declared = probe.frame_count
    if declared and packets < declared - max(2, declared // 100):
        raise MediaError(
            ErrorCode.corrupt_media,
            f"the video is truncated or damaged: {packets} of the {declared} frames its header "
            "declares are in the file",
        )


def segment_tasks(
    blob_key: str, slots: list[int], segment_seconds: float, common: dict
) -> list[DecodeTask]:
    """One decode task per occupied slot of the timeline; each runs to the next occupied slot,
    so the tasks cover the whole timeline and empty stretches cost nothing."""
    bounds = [slot * segment_seconds for slot in slots]
    return [
        DecodeTask(
            blob_key=blob_key,
            segment_index=i,
            start_s=0.0 if i == 0 else start,
            end_s=bounds[i + 1] if i + 1 < len(bounds) else None,
            **common,
        )
        for i, start in enumerate(bounds)
    ]


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
        owner=request.owner,
    )
    failed: list[SegmentDecoded] = []
    tasks: list[DecodeTask] = []
    if request.media_type == "video":
        key = request.video_blob_key
        assert key is not None
        if not blobs.exists(key):
            raise MediaError(ErrorCode.unsupported_media, f"blob {key!r} is not in the blob store")
        probe = probe_video(blobs.path(key), settings.max_pixels)
        slots, packets = occupied_segments(blobs.path(key), settings.segment_seconds, deadline)
        check_complete(probe, packets)
        tasks = segment_tasks(key, slots or [0], settings.segment_seconds, common)
        n_segments = len(tasks)
        external_ids: list[str] = []
    else:
        assert request.images is not None
        probe = None
        n_segments = len(request.images)
        external_ids = [image.external_id for image in request.images]
        for i, image in enumerate(request.images):
            key = image.blob_key or keys.uploaded_image(request.job_id, i)
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
        released=min(len(tasks), settings.decode_window) if request.media_type == "video" else None,
    )
    return planned, tasks, failed
