"""The aggregator's decisions, without Kafka: when a job is complete and what its body is.

The Faust agent (``stages.aggregator.agent``) keeps :class:`JobState` and batch payloads in tables
and calls these functions; they know stages only through the registry, so a new stage needs no
change here.
"""

from __future__ import annotations

import json
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
from schemas.messages import JobFailed, JobPlanned, JobState, SegmentDecoded, SegmentState
from stages.registry import stages
from stages.spec import VideoContext

# stage -> (segment, batch, payload as JSON text): parsed one stage at a time when a job is
# assembled, so a long video's payloads are held as compact text, never all as objects at once
Payloads = Mapping[str, list[tuple[int, int, str]]]


def payload_text(payload: dict[str, Any]) -> str:
    """How a stage's batch payload is kept until its job is assembled."""
    return json.dumps(payload, separators=(",", ":"))


class ParsedOnRead:
    """Payload texts, each parsed when it is reached: a finaliser that walks them holds one
    batch's objects at a time, not a long video's all at once (and may walk them again)."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (json.loads(text) for text in self.texts)


def state_from_plan(planned: JobPlanned) -> JobState:
    return JobState(
        job_id=planned.job_id,
        media_type=planned.media_type,
        stages=planned.stages,
        n_segments=planned.n_segments,
        external_ids=planned.external_ids,
        probe=planned.probe,
        webhook=planned.webhook,
        deadline=planned.deadline,
        submitted_at=planned.submitted_at,
        done={name: 0 for name in planned.stages},
        decode_tasks=planned.decode_tasks,
        released=len(planned.decode_tasks) if planned.released is None else planned.released,
    )


def state_from_failure(failed: JobFailed) -> JobState:
    """A job that failed before it was planned (its media could not be read)."""
    return JobState(
        job_id=failed.job_id,
        media_type=failed.media_type or keys.media_type_of(failed.job_id),
        webhook=failed.webhook,
        submitted_at=failed.submitted_at or datetime.now(UTC),
        error=failed.error,
    )


def expected_batches(state: JobState, stage: str) -> int | None:
    """Batches the stage must report, or ``None`` while segments are still being decoded."""
    if len(state.segments) < state.n_segments:
        return None
    profile = stages()[stage].profile
    return sum(s.batches.get(profile, 0) for s in state.segments.values() if s.error is None)


def record_segment(state: JobState, decoded: SegmentDecoded) -> bool:
    """Record a decoded segment; False if it was already recorded (a redelivery)."""
    key = str(decoded.segment_index)
    if key in state.segments:
        return False
    state.segments[key] = SegmentState(
        batches=decoded.batches, frames=decoded.frames, error=decoded.error
    )
    if decoded.error is not None and state.media_type == "video":
        state.error = decoded.error  # a video with an undecodable segment fails as a whole
    return True


def record_batch(state: JobState, stage: str, segment: int, batch: int) -> bool:
    """Count a batch once; False when the state already counted it."""
    masks = state.received.setdefault(stage, {})
    bit = 1 << batch
    if masks.get(str(segment), 0) & bit:
        return False
    masks[str(segment)] = masks.get(str(segment), 0) | bit
    state.done[stage] = sum(mask.bit_count() for mask in masks.values())
    return True


def absent_batches(state: JobState, segment_index: int) -> dict[str, list[int]]:
    """Stage -> the batches of a decoded segment it has not reported."""
    segment = state.segments[str(segment_index)]
    if segment.error is not None:
        return {}
    absent = {}
    for stage in state.stages:
        expected = segment.batches.get(stages()[stage].profile, 0)
        mask = state.received.get(stage, {}).get(str(segment_index), 0)
        if batches := [b for b in range(expected) if not mask >> b & 1]:
            absent[stage] = batches
    return absent


def incomplete_segments(state: JobState) -> list[int]:
    """Segments not yet reported, or with batches some stage has not reported."""
    return [
        task.segment_index
        for task in state.decode_tasks[: state.released]  # the others were never sent
        if str(task.segment_index) not in state.segments
        or absent_batches(state, task.segment_index)
    ]


def what_is_missing(state: JobState, segments: list[int]) -> str:
    """For the log of a stalled job: what each incomplete segment still lacks."""
    parts = []
    for index in segments:
        if str(index) not in state.segments:
            parts.append(f"{index}: not decoded")
            continue
        absent = absent_batches(state, index).items()
        parts.append(f"{index}: " + ", ".join(f"{stage} batches {b}" for stage, b in absent))
    return "; ".join(parts)


def is_complete(state: JobState) -> bool:
    if state.error is not None:
        return True
    return (
        all(expected_batches(state, s) == state.done.get(s, 0) for s in state.stages)
        and len(state.segments) >= state.n_segments
    )


def progress(state: JobState) -> float:
    """Each segment is an equal share: 0 until decoded, then 0.3 plus 0.7 times the share of
    its batches the stages have reported. It never goes backwards as segments report how many
    batches they hold (a share counted against a total that grows would)."""
    if not state.n_segments:
        return 0.0
    total = 0.0
    for key, segment in state.segments.items():
        ratios = []
        for stage in state.stages:
            expected = segment.batches.get(stages()[stage].profile, 0)
            got = state.received.get(stage, {}).get(key, 0).bit_count()
            ratios.append(1.0 if expected == 0 else min(1.0, got / expected))
        total += 0.3 + 0.7 * (sum(ratios) / len(ratios) if ratios else 1.0)
    return round(min(0.99, total / state.n_segments), 3)


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


def _image_items(state: JobState, payloads: Payloads, settings: Settings) -> list[ImageItem]:
    by_item: dict[str, dict[int, str]] = {
        name: {seg: p for seg, _, p in entries} for name, entries in payloads.items()
    }
    items = []
    for i, external_id in enumerate(state.external_ids):
        segment = state.segments.get(str(i))
        if segment is not None and segment.error is not None:
            items.append(
                ImageItem(external_id=external_id, status=JobStatus.failed, error=segment.error)
            )
            continue
        fields: dict[str, Any] = ImageResult().model_dump()
        for name, spec in stages().items():
            payload = by_item.get(name, {}).get(i)
            if name in state.stages and spec.finalize_image is not None and payload is not None:
                fields.update(spec.finalize_image(json.loads(payload), settings))
        items.append(
            ImageItem(
                external_id=external_id,
                status=JobStatus.finished,
                result=ImageResult.model_validate(fields),
            )
        )
    return items


def job_body(
    state: JobState, payloads: Payloads | None, settings: Settings, status: JobStatus
) -> VideoJob | ImageBatchJob:
    """The public body of a job: with results when ``status`` is finished."""
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
        items = _image_items(state, payloads or {}, settings)
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
