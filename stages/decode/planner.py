"""Turning an ingest request into a plan: which stages run, which segments are decoded where.

Pure apart from reading and writing the blob store, so it is tested without Kafka.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import math
from datetime import UTC, datetime

from framewise import keys
from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.media import MediaError, TimelineScan, probe_video, scan_timeline
from schemas.api import ErrorCode, JobError
from schemas.messages import DecodeTask, IngestRequest, JobPlanned, SegmentDecoded, VideoProbe
from stages.profiles import motion_context_seconds
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


SHORTEST_SEGMENT_S = 4.0  # below it, a second decoder's seek costs more than it saves


def segment_length(duration_s: float, settings: Settings) -> float:
    """Segments of equal length, at most ``FRAMEWISE_SEGMENT_SECONDS``, as many as a multiple
    of the segments one worker decodes at once (``FRAMEWISE_DECODE_CONCURRENCY``), so that a
    short video is decoded on every core too and no decoder idles while another decodes the
    last one; not shorter than ``SHORTEST_SEGMENT_S`` for that. A claimed duration costs
    nothing to fake; the tasks still follow the frames really held."""
    if duration_s <= 0:
        return settings.segment_seconds
    per_worker = settings.decode_concurrency  # a multiple of it: no decoder idles at the end
    count = per_worker * math.ceil(duration_s / settings.segment_seconds / per_worker)
    return max(min(SHORTEST_SEGMENT_S, settings.segment_seconds), duration_s / count)


LEAD_IN_COST = 0.4
"""A frame decoded only to reach a segment's start costs about this share of a frame decoded
and scaled, as the decoder skips the frames nothing refers to (``framewise.media``): 0.29 to
0.37 with every stage on testvideo.mp4's B-frames, more with fewer B-frames."""
MAX_LEAD_IN = 0.5
"""The most frames decoded to reach a segment's start, as a share of the frames it analyses."""


def segment_starts(
    scan: TimelineScan, length: float, lead: float, balance: bool = True
) -> list[float]:
    """Where the segments start: for each occupied slot after the first, whichever costs
    fewer frames. Just after one of the key frames around the slot's start (by ``lead``, the
    longest context and one frame) the decoder decodes nothing for nothing; near the slot's
    start it decodes a lead-in from the key frame before (at :data:`LEAD_IN_COST`). Where the
    segments are decoded all at once (``balance``: a short video), the frames a key frame
    moves between segments count too, as one decoder then idles while another ends, and a
    lead-in's start moves later by half its cost so that both segments bear it. A slot with
    neither (no key frame near, a lead-in over :data:`MAX_LEAD_IN` of its frames) belongs to
    the segment before: a video with one key frame is one segment, not a decode from its start
    for every segment (a cost that grows with the square of its length)."""
    starts = [0.0]
    for position, slot in enumerate(scan.slots[1:], start=1):
        nominal = slot * length
        held = scan.frames_in_slot(position)
        per_second = held / max(scan.last_in_slot[slot] - nominal, 1e-3)
        nearest = bisect.bisect_left(scan.keyframes, nominal - lead)  # the key frames around
        costs = {  # start: (frames it costs, then how far it moves)
            k + lead: (
                abs(k + lead - nominal) * per_second if balance else 0.0,
                abs(k + lead - nominal),
            )
            for k in scan.keyframes[max(0, nearest - 1) : nearest + 1]
            if starts[-1] < k + lead <= scan.last_in_slot[slot]
            and abs(k + lead - nominal) < length / 2
        }
        from_keyframe = scan.packets_before_keyframe[nearest - 1] if nearest else 0
        lead_in = scan.packets_before_slot[slot] - from_keyframe
        if lead_in <= MAX_LEAD_IN * held:
            cost = LEAD_IN_COST * max(0, lead_in)
            later = cost / 2 / per_second if balance else 0.0
            costs[min(nominal + later, scan.last_in_slot[slot])] = (cost, later)
        if costs:
            starts.append(min(costs, key=costs.__getitem__))
    return starts


def segment_tasks(blob_key: str, starts: list[float], common: dict) -> list[DecodeTask]:
    """One decode task per start; each runs to the next start, so the tasks cover the whole
    timeline and empty stretches cost nothing."""
    return [
        DecodeTask(
            blob_key=blob_key,
            segment_index=i,
            start_s=start,
            end_s=starts[i + 1] if i + 1 < len(starts) else None,
            **common,
        )
        for i, start in enumerate(starts)
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
        length = segment_length(probe.duration_seconds, settings)
        scan = scan_timeline(blobs.path(key), length, deadline)
        check_complete(probe, scan.packets)
        lead = motion_context_seconds(settings) + 1.0 / (probe.fps or 25.0) + 0.01
        balance = len(scan.slots) <= settings.decode_concurrency  # all decoded at once
        tasks = segment_tasks(key, segment_starts(scan, length, lead, balance), common)
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
