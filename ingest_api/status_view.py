"""Job status for the API, materialised from ``framewise.job-status.v1``.

Every API replica reads the whole status topic from the beginning into a :class:`JobBodies`
store (bounded memory, the bodies on local disk), so status is readable from any replica and
survives an API restart; the aggregator is the topic's writer (the API itself writes only
``queued``). Latency samples come from the same records.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime

from framewise import keys, topics
from framewise.config import Settings
from framewise.journal import Journal
from framewise.metrics import JOB_SECONDS, JOBS_ACTIVE, JOBS_FINISHED, WEBHOOK_FAILURES
from framewise.topic_view import TopicView
from ingest_api.job_bodies import JobBodies, StoredBody
from ingest_api.problems import ProblemError
from schemas.api import JobHead

LATENCY_WINDOW = 200  # recent finished jobs per media type
MAX_JOB_ID = 80  # ours are under 40 characters; longer ids are neither looked up nor echoed


class StatusView:
    def __init__(self, settings: Settings, journal: Journal | None = None) -> None:
        self.journal = journal  # keeps the latest body of every job durable (embedded broker)
        self.jobs = JobBodies()  # local disk: a cache each replica rebuilds from the topic
        self.latency: dict[str, deque[float]] = {
            "video": deque(maxlen=LATENCY_WINDOW),
            "image": deque(maxlen=LATENCY_WINDOW),
        }
        self.active: set[str] = set()  # queued or processing: the queue depth
        self.view = TopicView(settings, topics.JOB_STATUS.name, self._on_record)

    async def find(self, job_id: str, prefix: str, owner: str | None) -> StoredBody:
        """The body of ``owner``'s job ``job_id`` (a large one as its file); another key's job
        is reported exactly like one that does not exist (404)."""
        plausible = job_id.startswith(prefix) and len(job_id) <= MAX_JOB_ID
        body = self.jobs.get(job_id) if plausible else None
        foreign = owner is not None and (self.jobs.owner(job_id) or "") not in ("", owner)
        if plausible and (body is None or foreign):
            # Another key's job waits like a missing one, so the timing tells nothing.
            await self.caught_up()
            body = self.jobs.get(job_id)
        if body is None or foreign:
            shown = job_id if len(job_id) <= MAX_JOB_ID else job_id[:MAX_JOB_ID] + "…"
            raise ProblemError(404, "Not Found", f"no job {shown!r}")
        return body

    async def start(self) -> None:
        await self.view.start()

    async def stop(self) -> None:
        await self.view.stop()
        self.jobs.close()

    async def caught_up(self, timeout: float = 2.0) -> None:
        await self.view.caught_up(timeout)

    def set_owner(self, job_id: str, owner: str) -> None:
        """The id of the API key that created ``job_id`` ("" for none)."""
        self.jobs.set_owner(job_id, owner)

    def expired(self, max_age_s: float) -> list[str]:
        """Finished or failed jobs last updated longer than ``max_age_s`` ago."""
        return self.jobs.ended_before(time.time() - max_age_s)

    def forget(self, job_ids: list[str]) -> None:
        """Drop expired jobs (retention); their records expire from the topic too."""
        for job_id in job_ids:
            self.jobs.forget(job_id)
            self.active.discard(job_id)
            if self.journal is not None:
                self.journal.forget_job(job_id)
        JOBS_ACTIVE.set(len(self.active))

    def _on_record(self, job_id: str, body: bytes | None, headers: dict[str, bytes]) -> None:
        owner = headers.get(keys.OWNER_HEADER)
        if owner:
            self.jobs.set_owner(job_id, owner.decode())
        if body:
            head = JobHead.of(body)  # parsed once, for the store, the metrics and the journal
            self.apply(job_id, body, head)
            if self.journal is not None:
                owner = self.jobs.owner(job_id) or None
                self.journal.keep_status(job_id, body, owner, head.terminal)

    def apply(self, job_id: str, body: bytes, head: JobHead | None = None) -> None:
        head = head or JobHead.of(body)
        status = head.status
        updated = _timestamp(head.updated_at)
        self.jobs.put(job_id, body, status, updated)
        media_type = keys.media_type_of(job_id)
        if status in ("queued", "processing"):
            self.active.add(job_id)
            JOBS_ACTIVE.set(len(self.active))
            return
        if job_id in self.active:  # the job ends here (later records only add to it)
            self.active.discard(job_id)
            JOBS_ACTIVE.set(len(self.active))
            JOBS_FINISHED.labels(media_type, status).inc()
            seconds = _elapsed_seconds(head)
            if seconds is not None:
                JOB_SECONDS.labels(media_type).observe(seconds)
            sample = _latency_sample(head) if status == "finished" else None
            if sample is not None:
                self.latency[media_type].append(sample)
        webhook = head.webhook or {}
        if webhook.get("attempts") and not webhook.get("delivered") and self.jobs.flag_once(job_id):
            WEBHOOK_FAILURES.inc()


def _timestamp(value: object) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp() if value else None
    except ValueError:
        return None


def _elapsed_seconds(head: JobHead) -> float | None:
    if head.created_at is None or head.updated_at is None:
        return None
    try:
        return (
            datetime.fromisoformat(head.updated_at) - datetime.fromisoformat(head.created_at)
        ).total_seconds()
    except (TypeError, ValueError):  # not a time, or one with a zone and one without
        return None


def _latency_sample(head: JobHead) -> float | None:
    """Milliseconds of server-side processing per media unit for one finished job."""
    seconds = _elapsed_seconds(head)
    if seconds is None:
        return None
    elapsed_ms = seconds * 1000
    units = len(head.items) if head.items is not None else head.duration_seconds or 0
    return elapsed_ms / units if units else None
