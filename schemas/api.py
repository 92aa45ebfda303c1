"""The public REST bodies of ``API.md``, defined once.

FastAPI serves these as ``/openapi.json``; the results topic carries :class:`VideoJob` and
:class:`ImageBatchJob` unchanged; ``schemas.export`` writes them as JSON Schema for ``docs/``.
Field names, types and nesting follow the contract exactly; ``None`` fields are left out of
responses so that optional fields are absent rather than ``null``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import AliasPath, BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobStatus(StrEnum):
    queued = "queued"
    processing = "processing"
    finished = "finished"
    failed = "failed"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.finished, JobStatus.failed)


class ErrorCode(StrEnum):
    processing_timeout = "processing_timeout"
    unsupported_media = "unsupported_media"
    corrupt_media = "corrupt_media"
    internal = "internal"


class JobError(Body):
    code: ErrorCode
    message: str


class TimeSegment(Body):
    start_seconds: float = Field(ge=0)
    end_seconds: float = Field(ge=0)


class Person(Body):
    age: float | None = Field(None, description="estimated age in years")
    gender: Literal["male", "female", "unidentified"]
    face_embedding: list[float] = Field(description="L2-normalised identity embedding")
    face_thumbnail: str | None = Field(None, description="base64 JPEG, no data URI prefix")
    allowlisted: bool
    relative_prominence: float = Field(ge=0, le=1)
    person_id: str = Field(description="stable within one job")


class PersonConstellationScene(Body):
    time_segment: TimeSegment
    person_ids: list[Person]


class VideoOcrResult(Body):
    language_code: str = Field(description="ISO 639-1")
    full_text: str
    time_segment: TimeSegment


class Section(Body):
    section_tag: str
    time_segments: list[TimeSegment]
    thumbnail_timestamp: float = Field(ge=0)
    confidence: float = Field(ge=0, le=1)
    is_critical: bool
    relative_activity: float = Field(ge=0, le=1)


class VideoMetadata(Body):
    duration_seconds: float
    fps: float
    width: int
    height: int
    analysed_fps: float
    frame_activity_interval_seconds: float


class VideoResult(Body):
    raw_scenes: list[TimeSegment] = Field(default_factory=list)
    frame_activity_diffs: list[float] = Field(default_factory=list)
    person_constellation_scenes: list[PersonConstellationScene] = Field(default_factory=list)
    ocr_results: list[VideoOcrResult] = Field(default_factory=list)
    sections: list[Section] = Field(default_factory=list)
    metadata: VideoMetadata | None = None


class WebhookStatus(Body):
    delivered: bool
    attempts: int
    last_error: str | None = None


class JobCommon(Body):
    job_id: str
    status: JobStatus
    error: JobError | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    progress: float | None = Field(None, ge=0, le=1)
    webhook: WebhookStatus | None = None


class VideoJob(JobCommon):
    result: VideoResult | None = None


class Tag(Body):
    tag: str
    probability: float = Field(ge=0, le=1)
    is_critical: bool


class ImageOcrResult(Body):
    language_code: str = Field(description="ISO 639-1")
    full_text: str


class ImageResult(Body):
    tags: list[Tag] = Field(default_factory=list)
    person_ids: list[Person] = Field(default_factory=list)
    ocr_results: list[ImageOcrResult] = Field(default_factory=list)


class ImageItem(Body):
    external_id: str
    status: JobStatus
    result: ImageResult | None = None
    error: JobError | None = None


class ImageBatchJob(JobCommon):
    items: list[ImageItem] = Field(default_factory=list)


class _Skipped(BaseModel):
    """An item whose contents are not read."""


class JobHead(BaseModel):
    """The few fields of a job body (:class:`VideoJob` or :class:`ImageBatchJob`) that the API's
    status view, its metrics and the journal read. :meth:`of` parses them out of the JSON
    without building the result as Python objects: a long video's result is megabytes."""

    status: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    webhook: dict[str, object] | None = None
    duration_seconds: float | None = Field(
        None, validation_alias=AliasPath("result", "metadata", "duration_seconds")
    )
    items: list[_Skipped] | None = None

    @property
    def terminal(self) -> bool:
        """The job has ended: its body will not change but for the webhook's outcome."""
        return self.status in (JobStatus.finished, JobStatus.failed)

    @classmethod
    def of(cls, body: bytes) -> JobHead:
        """The head of ``body``; empty where it is not a job body."""
        try:
            return cls.model_validate_json(body)
        except ValueError:
            return cls()


class WebhookConfig(Body):
    url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    secret: str | None = Field(None, min_length=1, max_length=1024)


class ImageInput(Body):
    external_id: str = Field(min_length=1, max_length=256)
    data_base64: str = Field(min_length=1, description="raw base64, no data URI prefix")


class ImageBatchRequest(Body):
    images: list[ImageInput] = Field(min_length=1)
    webhook: WebhookConfig | None = None


class JobAccepted(Body):
    job_id: str


class LatencyReport(Body):
    media_type: Literal["video", "image"]
    unit: Literal["second", "image"]
    latency_ms_per_unit: float | None
    samples: int = 0


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict] | None = None


class ImageData(Body):
    data_base64: str = Field(min_length=1, description="raw base64, no data URI prefix")


class AllowlistEnrollRequest(Body):
    label: str = Field(min_length=1, max_length=256)
    images: list[ImageData] = Field(min_length=1, max_length=32)


class AllowlistIdentity(Body):
    identity_id: str
    label: str
    status: Literal["pending", "enrolled", "failed", "needs_reenrollment"] = Field(
        description="needs_reenrollment: enrolled with another face pack than the active one, "
        "so it never matches until enrolled again"
    )
    faces: int = Field(description="enrolled face embeddings")
    face_pack: str | None = Field(None, description="the face pack that made the embeddings")
    created_at: datetime
    error: str | None = None


class AllowlistListing(Body):
    identities: list[AllowlistIdentity]


JobBody = VideoJob | ImageBatchJob
