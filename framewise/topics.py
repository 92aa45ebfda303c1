"""Every topic of the pipeline: its name, key, value schema and who reads it.

Names carry the schema version (``.v1``); a breaking change gets a new topic. Internal topics
may change between releases; ``ingest``, ``results`` and the dead-letter topics are public.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    value: str
    public: bool
    compacted: bool = False  # compacted on a real cluster (see Settings.compact_topics)

    @property
    def dead_letter(self) -> str:
        return f"{self.name}.dlq"


INGEST = TopicSpec("framewise.ingest.v1", "job_id", "IngestRequest", public=True)
DECODE_TASKS = TopicSpec("framewise.decode-tasks.v1", "job_id:segment", "DecodeTask", public=False)
JOB_EVENTS = TopicSpec(
    "framewise.job-events.v1", "job_id", "JobEvent (kind-tagged union)", public=False
)
JOB_STATUS = TopicSpec(
    "framewise.job-status.v1", "job_id", "VideoJob | ImageBatchJob", public=False, compacted=True
)
RESULTS = TopicSpec(
    "framewise.results.v1", "job_id", "VideoJob | ImageBatchJob (terminal)", public=True
)
WEBHOOKS = TopicSpec("framewise.webhooks.v1", "job_id", "WebhookDelivery", public=False)


ALLOWLIST = TopicSpec(
    "framewise.allowlist.v1",
    "identity_id",
    "AllowlistRecord (null: removed)",
    public=False,
    compacted=True,
)
ALLOWLIST_REQUESTS = TopicSpec(
    "framewise.allowlist-requests.v1", "identity_id", "AllowlistEnrollment", public=False
)


def frames_topic(profile: str) -> TopicSpec:
    """Frame batches of one sampling profile (``motion``: every frame, small; ``detail``)."""
    return TopicSpec(
        f"framewise.frames.{profile}.v1", "job_id:segment:batch", "FrameBatch", public=False
    )


PROFILES = ("motion", "detail")

ALL = (
    INGEST,
    DECODE_TASKS,
    JOB_EVENTS,
    JOB_STATUS,
    RESULTS,
    WEBHOOKS,
    ALLOWLIST,
    ALLOWLIST_REQUESTS,
    *(frames_topic(p) for p in PROFILES),
)
