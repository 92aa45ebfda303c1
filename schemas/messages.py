"""Kafka message records, defined once and versioned.

Every value on a framewise topic is the UTF-8 JSON of one of these models. Each carries
``schema_version``; a consumer validates on entry and dead-letters what does not parse.
The topics that carry them are listed in :mod:`framewise.topics`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from schemas.api import JobError, WebhookConfig, WebhookStatus

JOB_ID_PATTERN = r"^(video|image_batch)_[A-Za-z0-9_-]{16,64}$"
BLOB_KEY_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9_./-]{0,255}$"

MediaType = Literal["video", "image"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1] = 1


class ImageSource(BaseModel):
    """One image of an ingest request: inline base64 or a blob already in the blob store."""

    model_config = ConfigDict(extra="forbid")
    external_id: str = Field(min_length=1, max_length=256)
    data_base64: str | None = None
    blob_key: str | None = Field(None, pattern=BLOB_KEY_PATTERN)

    @model_validator(mode="after")
    def _one_source(self) -> ImageSource:
        if (self.data_base64 is None) == (self.blob_key is None):
            raise ValueError("give exactly one of data_base64 and blob_key")
        return self


class IngestRequest(Message):
    """Public: a job submitted on ``framewise.ingest.v1`` (REST uploads publish the same)."""

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    media_type: MediaType
    video_blob_key: str | None = Field(
        None, pattern=BLOB_KEY_PATTERN, description="claim check: the video in the blob store"
    )
    images: list[ImageSource] | None = Field(None, min_length=1, max_length=4096)
    webhook: WebhookConfig | None = None
    max_processing_time_s: int = Field(0, ge=0, description="0: no limit")
    submitted_at: datetime | None = None
    owner: str | None = Field(
        None, description="id of the API key that submitted it; its allowlist is the one matched"
    )

    @model_validator(mode="after")
    def _media_matches(self) -> IngestRequest:
        if self.media_type == "video":
            if not self.video_blob_key or self.images is not None:
                raise ValueError("a video job needs video_blob_key and no images")
            if not self.job_id.startswith("video_"):
                raise ValueError("a video job id starts with video_")
        else:
            if not self.images or self.video_blob_key is not None:
                raise ValueError("an image job needs images and no video_blob_key")
            if not self.job_id.startswith("image_batch_"):
                raise ValueError("an image job id starts with image_batch_")
            ids = [image.external_id for image in self.images]
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            if duplicates:
                raise ValueError(f"duplicate external_id: {duplicates}")
        return self


class DecodeTask(Message):
    """Internal: one segment of a video, or one image, for a decode worker."""

    job_id: str
    media_type: MediaType
    blob_key: str
    segment_index: int = Field(ge=0)
    start_s: float = 0.0
    end_s: float | None = None
    stages: list[str]
    profiles: list[str]
    deadline: float | None = Field(None, description="unix time after which work is dropped")
    owner: str | None = Field(
        None, description="id of the API key that submitted it; its allowlist is the one matched"
    )


class FrameBatch(Message):
    """Internal: decoded frames of one profile, stored under ``blob_key`` (JPEGs or ``.npy``:
    ``framewise/frame_files.py``)."""

    job_id: str
    media_type: MediaType
    profile: str
    segment_index: int
    batch_index: int
    blob_key: str
    context_frames: int = Field(
        0, ge=0, description="leading frames that belong to the previous batch (for diffs)"
    )
    frame_indices: list[int]
    timestamps: list[float]
    fps: float = Field(description="frames per second of this profile (0: a still image)")
    stages: list[str] = Field(description="stages enabled for the job; others skip the batch")
    deadline: float | None = None
    owner: str | None = Field(
        None, description="id of the API key that submitted it; its allowlist is the one matched"
    )


class VideoProbe(BaseModel):
    duration_seconds: float
    fps: float
    width: int
    height: int
    frame_count: int | None = None


class JobPlanned(Message):
    kind: Literal["job_planned"] = "job_planned"
    job_id: str
    media_type: MediaType
    stages: list[str]
    n_segments: int
    external_ids: list[str] = Field(default_factory=list)
    probe: VideoProbe | None = None
    webhook: WebhookConfig | None = None
    deadline: float | None = None
    submitted_at: datetime
    decode_tasks: list[DecodeTask] = Field(
        default_factory=list, description="re-published for segments whose work was lost"
    )
    released: int | None = Field(
        None,
        description="decode tasks published with the plan; the aggregator releases the next one "
        "as each segment ends (None: all of them)",
    )


class SegmentDecoded(Message):
    kind: Literal["segment_decoded"] = "segment_decoded"
    job_id: str
    segment_index: int
    batches: dict[str, int] = Field(description="batches published per profile")
    frames: int = 0
    error: JobError | None = None


class BatchResult(Message):
    kind: Literal["batch_result"] = "batch_result"
    job_id: str
    stage: str
    segment_index: int
    batch_index: int
    payload: dict[str, Any]
    error: JobError | None = None


class JobFailed(Message):
    kind: Literal["job_failed"] = "job_failed"
    job_id: str
    error: JobError
    # Enough to report a job that never got planned (probe failed).
    media_type: MediaType | None = None
    webhook: WebhookConfig | None = None
    submitted_at: datetime | None = None


class DeadlinePassed(Message):
    kind: Literal["deadline_passed"] = "deadline_passed"
    job_id: str


class Reconcile(Message):
    """Internal: the aggregator's timer found a job without progress."""

    kind: Literal["reconcile"] = "reconcile"
    job_id: str
    after_restart: bool = Field(
        False,
        description="the job has not moved since this aggregator started: reconcile without "
        "waiting for the stall timeout (events may have been lost in the crash)",
    )


class JobExpired(Message):
    """Internal: the aggregator's timer found a published job past the retention period: its
    state is forgotten (through the agent, the only writer of the tables)."""

    kind: Literal["job_expired"] = "job_expired"
    job_id: str


class WebhookOutcome(Message):
    kind: Literal["webhook_outcome"] = "webhook_outcome"
    job_id: str
    delivery_id: str
    delivered: bool
    attempts: int
    last_error: str | None = None


JobEvent = Annotated[
    JobPlanned
    | SegmentDecoded
    | BatchResult
    | JobFailed
    | DeadlinePassed
    | Reconcile
    | JobExpired
    | WebhookOutcome,
    Field(discriminator="kind"),
]


# Internal: everything the aggregator hears about a job, on ``framewise.job-events.v1``.
job_event_adapter: TypeAdapter[JobEvent] = TypeAdapter(JobEvent)


class WebhookDelivery(Message):
    """Internal: one webhook to deliver. What is signed and sent is the job's final body as
    the aggregator kept it in the blob store (``keys.final_body``), read when the delivery
    runs: the message stays small however many megabytes a long video's body is."""

    job_id: str
    delivery_id: str
    url: str
    secret: str | None = None
    created_at: float

    def __repr__(self) -> str:  # never let the secret reach a log line
        return f"WebhookDelivery(job_id={self.job_id!r}, delivery_id={self.delivery_id!r})"

    __str__ = __repr__


class DeadLetter(Message):
    """What a dead-letter topic holds: the original bytes and why they were refused."""

    source_topic: str
    partition: int | None = None
    offset: int | None = None
    reason: str
    key: str | None = None
    value: str = Field(description="the original value, decoded as UTF-8 with replacement")


class SegmentState(BaseModel):
    batches: dict[str, int] = Field(default_factory=dict)
    frames: int = 0
    error: JobError | None = None


class SegmentRecord(Message):
    """Internal: the aggregator's table value for one segment of a job (changelog
    ``…-segments-changelog``): its decode task, what decoding reported, the batches each stage
    reported. Apart from the job's record, so that an event writes one segment's few hundred
    bytes, not every segment's: a ten-hour video has 600."""

    task: DecodeTask | None = None
    decoded: SegmentState | None = None
    received: dict[str, int] = Field(
        default_factory=dict, description="stage -> bitmask of the batches counted"
    )


class JobState(Message):
    """Internal: the aggregator's table value for one job (changelog ``…-jobs-changelog``):
    its plan and running totals, the same few hundred bytes however long the video. What each
    segment holds is in its :class:`SegmentRecord`; the totals are counted again from those
    when a job is reconciled (a crash can come between the two writes)."""

    job_id: str
    media_type: MediaType
    stages: list[str] = Field(default_factory=list)
    n_segments: int = 0
    external_ids: list[str] = Field(default_factory=list)
    probe: VideoProbe | None = None
    webhook: WebhookConfig | None = None
    deadline: float | None = None
    submitted_at: datetime
    decoded: int = Field(0, description="segments decoding has reported")
    expected: dict[str, int] = Field(
        default_factory=dict, description="stage -> batches the decoded segments hold for it"
    )
    done: dict[str, int] = Field(default_factory=dict, description="stage -> batches counted")
    shares: float = Field(0.0, description="sum of the decoded segments' progress shares")
    published: bool = Field(False, description="the terminal body reached the topics")
    n_tasks: int = Field(0, description="decode tasks in the plan")
    released: int = Field(0, description="decode tasks published so far")
    window: int = Field(0, description="segments in flight at once: the plan's first release")
    completed: int = Field(0, description="segments decoded and counted by every stage")
    last_progress: float = Field(0.0, description="unix time of the last change")
    reconciliations: int = 0
    error: JobError | None = None
    final_status: Literal["finished", "failed"] | None = None
    keyframe_times: list[float] = Field(
        default_factory=list,
        description="video: where the viewer keeps a keyframe (scene middles, section "
        "thumbnails); the terminal body itself is kept in the blob store, not here",
    )
    webhook_status: WebhookStatus | None = None
    progress: float = 0.0


class AllowlistEnrollment(Message):
    """Internal: images of one person to enroll, for a face worker (``allowlist-requests``)."""

    identity_id: str
    label: str
    blob_keys: list[str]
    owner: str | None = Field(None, description="id of the API key that enrolled it")


class AllowlistRecord(Message):
    """An allowlist identity on the compacted ``framewise.allowlist.v1`` (null value: removed)."""

    identity_id: str
    label: str
    status: Literal["pending", "enrolled", "failed"]
    embeddings: list[str] = Field(
        default_factory=list, description="base64 float16, the face pack's embedding length"
    )
    face_pack: str | None = Field(
        None, description="the face pack that made the embeddings (absent: insightface)"
    )
    owner: str | None = Field(
        None, description="id of the API key that enrolled it: only its jobs match it"
    )
    error: str | None = None
    created_at: datetime
