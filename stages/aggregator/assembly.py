"""The aggregator's decisions, without Kafka: when a job is complete and what its body is.

The Faust agent (``stages.aggregator.agent``) keeps :class:`JobState` and batch payloads in tables
and calls these functions; they know stages only through the registry, so a new stage needs no
change here.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from framewise import keys
from framewise.config import Settings
from framewise.media import analysed_rate
from schemas.api import (
    ErrorCode,
    ImageBatchJob,
    ImageItem,
    ImageResult,
    JobError,
    JobStatus,
    VideoJob,
    VideoResult,
    WebhookStatus,
)
from schemas.messages import (
    JobFailed,
    JobPlanned,
    JobState,
    SegmentDecoded,
    SegmentRecord,
    SegmentState,
)
from stages.registry import stages
from stages.spec import VideoContext

# stage -> (segment, batch, stored payload): parsed one stage at a time when a job is
# assembled, so a long video's payloads are held compressed, never all as objects at once
Payloads = Mapping[str, list[tuple[int, int, bytes]]]


def stored_payload(payload: dict[str, Any]) -> bytes:
    """How a stage's batch payload is kept until its job is assembled: compact JSON,
    deflated. The aggregator holds every payload of a job in flight (and its changelog carries
    them): 3.4 MB of JSON for 9.6 min of video with people, 2.8x less deflated at level 1, for
    about 30 us a batch."""
    return zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 1)


def loaded_payload(stored: bytes) -> dict[str, Any]:
    """A payload as :func:`stored_payload` kept it, or as plain JSON (a changelog written
    before payloads were deflated)."""
    return json.loads(stored if stored[:1] == b"{" else zlib.decompress(stored))


class ParsedOnRead:
    """Stored payloads, each parsed when it is reached: a finaliser that walks them holds one
    batch's objects at a time, not a long video's all at once (and may walk them again)."""

    def __init__(self, stored: list[bytes]) -> None:
        self.stored = stored

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (loaded_payload(item) for item in self.stored)


# segment index -> its record, for the functions that need every segment of a job
Segments = Mapping[int, SegmentRecord]


def state_from_plan(planned: JobPlanned) -> tuple[JobState, dict[int, SegmentRecord]]:
    """The job's record and a record per decode task (written once, read when the task is
    released or reconciled)."""
    state = JobState(
        job_id=planned.job_id,
        media_type=planned.media_type,
        stages=planned.stages,
        n_segments=planned.n_segments,
        external_ids=planned.external_ids,
        probe=planned.probe,
        webhook=planned.webhook,
        deadline=planned.deadline,
        submitted_at=planned.submitted_at,
        expected={name: 0 for name in planned.stages},
        done={name: 0 for name in planned.stages},
        n_tasks=len(planned.decode_tasks),
        released=len(planned.decode_tasks) if planned.released is None else planned.released,
    )
    state.window = state.released
    return state, {task.segment_index: SegmentRecord(task=task) for task in planned.decode_tasks}


def state_from_failure(failed: JobFailed) -> JobState:
    """A job that failed before it was planned (its media could not be read)."""
    return JobState(
        job_id=failed.job_id,
        media_type=failed.media_type or keys.media_type_of(failed.job_id),
        webhook=failed.webhook,
        submitted_at=failed.submitted_at or datetime.now(UTC),
        error=failed.error,
    )


def segment_share(state: JobState, record: SegmentRecord) -> float:
    """A segment's part of the progress: 0 until decoded, then 0.3 plus 0.7 times the share of
    its batches the stages have reported. Counted per segment, the progress never goes
    backwards as segments report how many batches they hold (a share counted against a total
    that grows would)."""
    if record.decoded is None:
        return 0.0
    ratios = []
    for stage in state.stages:
        expected = record.decoded.batches.get(stages()[stage].profile, 0)
        got = record.received.get(stage, 0).bit_count()
        ratios.append(1.0 if expected == 0 else min(1.0, got / expected))
    return 0.3 + 0.7 * (sum(ratios) / len(ratios) if ratios else 1.0)


def _expected_of(state: JobState, record: SegmentRecord) -> dict[str, int]:
    """Stage -> the batches a decoded segment holds for it (none for a failed segment)."""
    if record.decoded is None or record.decoded.error is not None:
        return {}
    profile_batches = record.decoded.batches
    return {s: profile_batches.get(stages()[s].profile, 0) for s in state.stages}


def segment_complete(state: JobState, record: SegmentRecord) -> bool:
    """Decoded, and each stage has reported every batch it holds."""
    return record.decoded is not None and not absent_batches(state, record)


def record_segment(state: JobState, record: SegmentRecord, decoded: SegmentDecoded) -> bool:
    """Record a decoded segment; False if it was already recorded (a redelivery)."""
    if record.decoded is not None:
        return False
    record.decoded = SegmentState(
        batches=decoded.batches, frames=decoded.frames, error=decoded.error
    )
    state.decoded += 1
    for stage, count in _expected_of(state, record).items():
        state.expected[stage] = state.expected.get(stage, 0) + count
    state.shares += segment_share(state, record)
    state.completed += segment_complete(state, record)
    if decoded.error is not None and state.media_type == "video":
        state.error = decoded.error  # a video with an undecodable segment fails as a whole
    return True


def record_batch(state: JobState, record: SegmentRecord, stage: str, batch: int) -> bool:
    """Count a batch once; False when the segment's record already counted it."""
    bit = 1 << batch
    if record.received.get(stage, 0) & bit:
        return False
    before = segment_share(state, record)
    was_complete = segment_complete(state, record)
    record.received[stage] = record.received.get(stage, 0) | bit
    state.done[stage] = state.done.get(stage, 0) + 1
    state.shares += segment_share(state, record) - before
    state.completed += not was_complete and segment_complete(state, record)
    return True


def recount(state: JobState, segments: Segments) -> None:
    """The job's totals counted again from its segments' records (a crash between writing a
    segment's record and the job's leaves the job's short)."""
    state.decoded = state.completed = 0
    state.expected = {stage: 0 for stage in state.stages}
    state.done = {stage: 0 for stage in state.stages}
    state.shares = 0.0
    for record in segments.values():
        state.decoded += record.decoded is not None
        state.completed += segment_complete(state, record)
        for stage, count in _expected_of(state, record).items():
            state.expected[stage] += count
        for stage, mask in record.received.items():
            if stage in state.done:
                state.done[stage] += mask.bit_count()
        state.shares += segment_share(state, record)


def absent_batches(state: JobState, record: SegmentRecord) -> dict[str, list[int]]:
    """Stage -> the batches of a decoded segment it has not reported (the stages that have
    every batch are told by their masks alone: this runs on every batch reported)."""
    absent = {}
    for stage, expected in _expected_of(state, record).items():
        mask, every = record.received.get(stage, 0), (1 << expected) - 1
        if mask & every != every:
            absent[stage] = [b for b in range(expected) if not mask >> b & 1]
    return absent


def incomplete_segments(state: JobState, segments: Segments) -> list[int]:
    """Segments whose task was sent and that are not yet reported, or with batches some stage
    has not reported."""
    return [
        index
        for index, record in sorted(segments.items())
        if record.task is not None
        and (state.media_type == "image" or index < state.released)  # the others: never sent
        and not segment_complete(state, record)
    ]


def what_is_missing(state: JobState, segments: Segments, incomplete: list[int]) -> str:
    """For the log of a stalled job: what each incomplete segment still lacks."""
    parts = []
    for index in incomplete:
        record = segments[index]
        if record.decoded is None:
            parts.append(f"{index}: not decoded")
            continue
        absent = absent_batches(state, record).items()
        parts.append(f"{index}: " + ", ".join(f"{stage} batches {b}" for stage, b in absent))
    return "; ".join(parts)


def is_complete(state: JobState) -> bool:
    if state.error is not None:
        return True
    return state.decoded >= state.n_segments and all(
        state.expected.get(s, 0) == state.done.get(s, 0) for s in state.stages
    )


def progress(state: JobState) -> float:
    """The decoded segments' shares (:func:`segment_share`) over every segment."""
    if not state.n_segments:
        return 0.0
    return round(min(0.99, state.shares / state.n_segments), 3)


def _now() -> datetime:
    return datetime.now(UTC)


def video_result(state: JobState, payloads: Payloads, settings: Settings) -> VideoResult:
    probe = state.probe
    assert probe is not None
    # frame_activity_diffs come at the motion profile's rate where a stage reads it
    motion = any(stages()[name].profile == "motion" for name in state.stages)
    profile_fps = settings.motion_fps if motion else settings.detail_fps
    rate = analysed_rate(profile_fps, probe.fps)
    fields: dict[str, Any] = VideoResult().model_dump()
    for name, spec in stages().items():
        if name not in state.stages or spec.finalize_video is None:
            continue
        ordered = ParsedOnRead(
            [p for _, _, p in sorted(payloads.get(name, []), key=lambda x: x[:2])]
        )
        fields.update(spec.finalize_video(VideoContext(probe, rate, ordered, fields), settings))
    scenes = fields.get("raw_scenes") or []
    for internal in [k for k in fields if k.startswith("_")]:
        del fields[internal]  # shared between finalisers only, never in the public body
    fields["metadata"] = {
        # never shorter than the shots: a variable-frame-rate file can hold frames past the
        # duration its container states
        "duration_seconds": max(probe.duration_seconds, scenes[-1]["end_seconds"] if scenes else 0),
        "fps": probe.fps,
        "width": probe.width,
        "height": probe.height,
        "analysed_fps": rate,
        "frame_activity_interval_seconds": 1.0 / rate if rate else 0.0,
    }
    return VideoResult.model_validate(fields)


def _image_items(
    state: JobState, payloads: Payloads, segments: Segments, settings: Settings
) -> list[ImageItem]:
    by_item: dict[str, dict[int, bytes]] = {
        name: {seg: p for seg, _, p in entries} for name, entries in payloads.items()
    }
    items = []
    for i, external_id in enumerate(state.external_ids):
        decoded = segments[i].decoded if i in segments else None
        if decoded is not None and decoded.error is not None:
            items.append(
                ImageItem(external_id=external_id, status=JobStatus.failed, error=decoded.error)
            )
            continue
        fields: dict[str, Any] = ImageResult().model_dump()
        for name, spec in stages().items():
            payload = by_item.get(name, {}).get(i)
            if name in state.stages and spec.finalize_image is not None and payload is not None:
                fields.update(spec.finalize_image(loaded_payload(payload), settings))
        items.append(
            ImageItem(
                external_id=external_id,
                status=JobStatus.finished,
                result=ImageResult.model_validate(fields),
            )
        )
    return items


def job_body(
    state: JobState,
    payloads: Payloads | None,
    settings: Settings,
    status: JobStatus,
    segments: Segments | None = None,
) -> VideoJob | ImageBatchJob:
    """The public body of a job: with results (its ``payloads``, and for images the
    ``segments`` that say which items failed) when ``status`` is finished."""
    common: dict[str, Any] = dict(
        job_id=state.job_id,
        status=status,
        error=state.error if status == JobStatus.failed else None,
        created_at=state.submitted_at,
        updated_at=_now(),
        progress=1.0 if status.terminal else state.progress,
        webhook=state.webhook_status,
    )
    if state.media_type == "video":
        result = None
        if status == JobStatus.finished:
            result = video_result(state, payloads or {}, settings)
        return VideoJob(result=result, **common)
    items: list[ImageItem] = []
    if status == JobStatus.finished:
        items = _image_items(state, payloads or {}, segments or {}, settings)
    elif status != JobStatus.failed:
        items = [ImageItem(external_id=e, status=status) for e in state.external_ids]
    return ImageBatchJob(items=items, **common)


def timeout_error() -> JobError:
    return JobError(
        code=ErrorCode.processing_timeout,
        message="the job exceeded its Max-Processing-Time and was cancelled",
    )


def without_repeated_thumbnails(body: VideoJob) -> VideoJob:
    """``body`` with each person's ``face_thumbnail`` only in the first scene they appear in.

    The contract repeats a person's whole entry in every scene, and the thumbnail (one best
    crop per person and video, about 8 KB of base64) is most of it; it is optional, and
    ``person_id`` links the other appearances to it. The rest is unchanged."""
    if body.result is None:
        return body
    seen: set[str] = set()
    scenes = []
    for scene in body.result.person_constellation_scenes:
        persons = []
        for person in scene.person_ids:
            if person.person_id in seen:
                person = person.model_copy(update={"face_thumbnail": None})
            seen.add(person.person_id)
            persons.append(person)
        scenes.append(scene.model_copy(update={"person_ids": persons}))
    result = body.result.model_copy(update={"person_constellation_scenes": scenes})
    return body.model_copy(update={"result": result})


def too_large_error(size: int, limit: int) -> JobError:
    return JobError(
        code=ErrorCode.internal,
        message=f"the result is {size / 2**20:.1f} MiB, more than one Kafka message may "
        f"carry ({limit / 2**20:.1f} MiB): raise FRAMEWISE_MAX_MESSAGE_BYTES (and the "
        "brokers' message size limits)",
    )


def with_webhook_status(body_json: bytes, status: WebhookStatus) -> bytes:
    """The final body again, with the webhook delivery outcome filled in (as compact as the
    body it patches, so it still fits the message the body fitted)."""
    body = json.loads(body_json)
    body["webhook"] = status.model_dump(exclude_none=True)
    body["updated_at"] = _now().isoformat()
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
