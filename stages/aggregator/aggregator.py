"""The aggregator's state machine as a plain class: the single writer of job status.

Its tables are mappings (Faust tables in the worker, dicts in the tests): ``jobs`` (job id ->
:class:`JobState` as JSON: the plan and running totals), ``segments`` (segment key ->
:class:`SegmentRecord` as JSON: a segment's task and what was reported of it) and ``batches``
(batch key -> payload as deflated JSON, :func:`assembly.stored_payload`). An event rewrites
its job's and its segment's small records, so what a job writes grows with its length, not
with its length squared.
:meth:`Aggregator.handle` applies one job event and returns the messages to send; the Faust
agent only calls it and sends them. A final body is kept (in the blob store,
:func:`framewise.keys.final_body`) and the job marked final before the body is returned for
sending, and the job is marked published (its batches and media forgotten) only once the sends
went out (:meth:`Aggregator.published`), so a crash anywhere repeats a publication rather than
losing it. Redelivered events are recognised (batch bitmasks, segment numbers,
``final_status``) and change nothing. A published job's state is forgotten after the retention
period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from framewise import keyframes, keys, topics
from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.kafka import to_bytes
from framewise.topics import TopicSpec
from schemas.api import ErrorCode, ImageBatchJob, JobError, JobStatus, VideoJob, WebhookStatus
from schemas.messages import (
    BatchResult,
    DeadlinePassed,
    DecodeTask,
    JobExpired,
    JobFailed,
    JobPlanned,
    JobState,
    Reconcile,
    SegmentDecoded,
    SegmentRecord,
    WebhookDelivery,
    WebhookOutcome,
)
from stages.aggregator import assembly
from stages.registry import stages

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 1.0  # at most one progress update per job and second

Offload = Callable[..., Awaitable[Any]]


async def run_here(func: Callable[..., Any], *args: Any) -> Any:
    return func(*args)


@dataclass
class Send:
    """One message to produce. A final body is given by its blob-store key (``stored``, with
    ``value`` left empty): the agent reads it just before its send and holds it no longer than
    the Kafka client takes to copy it, since a long video's body is megabytes."""

    topic: TopicSpec
    key: bytes
    value: bytes = b""
    stored: str | None = None


@dataclass
class Outcome:
    """What one call decided: messages to send in order, the job whose final body is among
    them (to mark published once they are sent), and the webhook delivery among them (for the
    journal to keep before it is sent)."""

    sends: list[Send] = field(default_factory=list)
    finalised: str | None = None
    webhook: WebhookDelivery | None = None


# What a final body may take of FRAMEWISE_MAX_MESSAGE_BYTES: the rest is for the record's own
# bytes and for the webhook outcome that is patched into the body later.
BODY_HEADROOM = 64 * 1024


def body_json(body: VideoJob | ImageBatchJob) -> bytes:
    """A job body as its JSON bytes."""
    return body.__pydantic_serializer__.to_json(body, exclude_none=True)


def fitting_body_json(body: VideoJob | ImageBatchJob, limit: int) -> bytes | None:
    """The final body as JSON of at most ``limit`` bytes (one Kafka message carries it to the
    status, results and API consumers): as it is, else with each face thumbnail given once
    (:func:`assembly.without_repeated_thumbnails`); ``None`` where even that is larger."""
    data = body_json(body)
    if len(data) <= limit:
        return data
    if isinstance(body, VideoJob):
        data = body_json(assembly.without_repeated_thumbnails(body))
        if len(data) <= limit:
            return data
    return None


def batch_key(job_id: str, stage: str, segment: int, batch: int) -> str:
    return f"{job_id}|{stage}|{segment}|{batch}"


def task_send(task: DecodeTask) -> Send:
    """A decode task, keyed by its segment."""
    return Send(
        topics.DECODE_TASKS, keys.segment_key(task.job_id, task.segment_index), to_bytes(task)
    )


def segment_record_key(job_id: str, segment: int) -> str:
    """The key of a segment's record in the segments table."""
    return f"{job_id}|{segment}"


class Aggregator:
    def __init__(
        self,
        jobs: MutableMapping[str, Any],
        segments: MutableMapping[str, Any],
        batches: MutableMapping[str, Any],
        settings: Settings,
        blobs: BlobStore,
        offload: Offload = run_here,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = jobs
        self.segments = segments
        self.batches = batches
        self.settings = settings
        self.blobs = blobs
        self.offload = offload  # runs CPU-heavy finalisers (the worker: off the event loop)
        self.clock = clock
        self.started_at = clock()
        self.restart_checked = False
        self.last_movement = self.started_at  # when any job here last moved
        # Throttles and one-shot timers, by job; dropped when the job is published.
        self.last_status: dict[str, float] = {}
        self.deadline_sent: set[str] = set()
        self.reconcile_sent: dict[str, float] = {}
        self.expiry_sent: set[str] = set()

    # --- the tables ---------------------------------------------------------------------------

    def load(self, job_id: str) -> JobState | None:
        raw = self.jobs.get(job_id)
        return JobState.model_validate(raw) if raw is not None else None

    def save(self, state: JobState) -> None:
        self.jobs[state.job_id] = state.model_dump(mode="json", exclude_none=True)

    def load_segment(self, job_id: str, index: int) -> SegmentRecord:
        raw = self.segments.get(segment_record_key(job_id, index))
        return SegmentRecord.model_validate(raw) if raw is not None else SegmentRecord()

    def save_segment(self, job_id: str, index: int, record: SegmentRecord) -> None:
        self.segments[segment_record_key(job_id, index)] = record.model_dump(
            mode="json", exclude_none=True
        )

    def segment_records(self, state: JobState) -> dict[int, SegmentRecord]:
        """Every segment's record of a job: read when it is finalised or reconciled only."""
        return {i: self.load_segment(state.job_id, i) for i in range(state.n_segments)}

    def payloads_of(self, state: JobState, segments: assembly.Segments) -> assembly.Payloads:
        out: dict[str, list[tuple[int, int, bytes]]] = {}
        for key, stage, segment, batch in self._batch_keys(state, segments):
            payload = self.batches.get(key)
            if payload is not None:
                out.setdefault(stage, []).append((segment, batch, payload))
        return out

    def _batch_keys(self, state: JobState, segments: assembly.Segments):
        for stage in state.stages:
            profile = stages()[stage].profile
            for index, record in segments.items():
                held = record.decoded.batches.get(profile, 0) if record.decoded else 0
                for b in range(held):
                    yield batch_key(state.job_id, stage, index, b), stage, index, b

    # --- events -------------------------------------------------------------------------------

    async def handle(self, event: Any) -> Outcome:
        job_id = event.job_id
        if isinstance(event, JobPlanned | SegmentDecoded | BatchResult):
            self.last_movement = self.clock()
        state = self.load(job_id)
        if isinstance(event, WebhookOutcome):
            return self._webhook_outcome(state, event)
        if isinstance(event, JobExpired):
            self.expiry_sent.discard(job_id)
            if state is not None and state.published:
                del self.jobs[job_id]
            return Outcome()
        if state is not None and state.final_status is not None:
            if not state.published:  # a crash came between keeping and publishing the body
                return self._publication(state)
            return Outcome()  # already final: a redelivery or a late result changes nothing
        if isinstance(event, JobPlanned):
            if state is not None:
                return Outcome()
            state, records = assembly.state_from_plan(event)
            for index, record in records.items():  # before the job's record that counts on them
                self.save_segment(job_id, index, record)
            return await self._changed(state)
        if isinstance(event, JobFailed):
            state = state or assembly.state_from_failure(event)
            state.error = event.error
            return await self._finalise(state)
        if state is None:
            log.warning("event for unknown job %s dropped: %s", job_id, event.kind)
            return Outcome()
        if isinstance(event, SegmentDecoded):
            record = self.load_segment(job_id, event.segment_index)
            if not assembly.record_segment(state, record, event):
                return Outcome()
            self.save_segment(job_id, event.segment_index, record)
            return await self._changed(state)
        if isinstance(event, BatchResult):
            return await self._batch(state, event)
        if isinstance(event, DeadlinePassed):
            state.error = assembly.timeout_error()
            return await self._finalise(state)
        if isinstance(event, Reconcile):
            return await self._reconcile(state, event.after_restart)
        return Outcome()

    def _webhook_outcome(self, state: JobState | None, event: WebhookOutcome) -> Outcome:
        """The outcome patched into the job's final body, which is published again. Without
        the job's state (a delivery the journal replayed into a fresh embedded broker, whose
        tables start empty) the kept body is patched all the same."""
        if state is not None and state.final_status is None:
            return Outcome()
        outcome = WebhookStatus(
            delivered=event.delivered, attempts=event.attempts, last_error=event.last_error
        )
        key = keys.final_body(event.job_id)
        try:
            body = self.blobs.get_bytes(key)
        except (FileNotFoundError, ValueError):  # past the retention, or not a job id
            return Outcome()
        self.blobs.put_bytes(key, assembly.with_webhook_status(body, outcome))
        if state is None:
            return Outcome([Send(topics.JOB_STATUS, keys.job_key(event.job_id), stored=key)])
        state.webhook_status = outcome
        self.save(state)
        return Outcome([self._status(state)])

    def _release(self, state: JobState) -> list[Send]:
        """The decode tasks a job may send now: its window (the plan's first release) beyond
        the segments that are complete, decoded and analysed by every stage. A long video
        thus keeps no more than its window in the decoders' and the stages' queues, and the
        jobs submitted after it take turns there too."""
        if state.error is not None:
            return []
        window = state.window or self.settings.decode_window  # 0: planned before it was kept
        sends = []
        while state.released < min(state.n_tasks, state.completed + window):
            task = self.load_segment(state.job_id, state.released).task  # a video's: in order
            assert task is not None
            state.released += 1
            sends.append(task_send(task))
        return sends

    async def _batch(self, state: JobState, event: BatchResult) -> Outcome:
        if event.stage not in state.stages:
            return Outcome()
        key = batch_key(state.job_id, event.stage, event.segment_index, event.batch_index)
        # The payload is written before the segment's record that counts it, and that before
        # the job's totals: a crash between the first two leaves an uncounted payload, which
        # the redelivered event counts; between the last two, totals short of the records,
        # which a reconciliation counts again. A batch is a duplicate only when it is both
        # counted and stored.
        record = self.load_segment(state.job_id, event.segment_index)
        counted = assembly.record_batch(state, record, event.stage, event.batch_index)
        if not counted and key in self.batches:
            return Outcome()
        self.batches[key] = assembly.stored_payload(event.payload)
        if counted:
            self.save_segment(state.job_id, event.segment_index, record)
        if event.error is not None:
            state.error = event.error
        return await self._changed(state)

    async def _changed(self, state: JobState) -> Outcome:
        state.last_progress = self.clock()
        if assembly.is_complete(state):
            return await self._finalise(state)
        state.progress = assembly.progress(state)
        release = self._release(state)
        self.save(state)
        if time.monotonic() - self.last_status.get(state.job_id, 0.0) < STATUS_INTERVAL_S:
            return Outcome(release)
        body = assembly.job_body(state, None, self.settings, JobStatus.processing)
        return Outcome([*release, self._status(state, body_json(body))])

    async def _finalise(self, state: JobState) -> Outcome:
        status = JobStatus.failed if state.error is not None else JobStatus.finished
        segments = self.segment_records(state)
        try:  # stage finalisers (shots, clustering, merging) may be heavy
            body = await self.offload(
                assembly.job_body,
                state,
                self.payloads_of(state, segments),
                self.settings,
                status,
                segments,
            )
        except Exception as exc:  # a stage's finaliser failed: report it, never hang the job
            log.exception("finalising %s failed", state.job_id)
            state.error = JobError(code=ErrorCode.internal, message=f"finalising failed: {exc}")
            status = JobStatus.failed
            body = assembly.job_body(state, None, self.settings, status)
        if state.webhook is not None:
            state.webhook_status = WebhookStatus(delivered=False, attempts=0)
        # The body is kept before anything is published or forgotten, serialized straight to
        # bytes (model_dump_json would make a str of it first: megabytes for a long video).
        limit = self.settings.max_message_bytes - BODY_HEADROOM
        data = fitting_body_json(body, limit)
        if data is None:  # never a job that cannot be published: it fails, and says why
            state.error = assembly.too_large_error(len(body_json(body)), limit)
            body = assembly.job_body(state, None, self.settings, JobStatus.failed)
            data = body_json(body)
            status = JobStatus.failed
        if isinstance(body, VideoJob) and body.result is not None:
            state.keyframe_times = keyframes.wanted_times(body.result)
        del body  # only the bytes are held from here
        self.blobs.put_bytes(keys.final_body(state.job_id), data)
        state.final_status = status.value
        state.last_progress = self.clock()
        self.save(state)
        return self._publication(state)

    def _publication(self, state: JobState) -> Outcome:
        """The sends of a final body, kept in the blob store: status, results and, if asked,
        the webhook (whose worker reads the body from there too). A publication repeated after
        a crash is the same."""
        assert state.final_status is not None
        key = keys.job_key(state.job_id)
        results = Send(topics.RESULTS, key, stored=keys.final_body(state.job_id))
        sends = [self._status(state), results]
        if state.webhook is None:
            return Outcome(sends, finalised=state.job_id)
        delivery = WebhookDelivery(
            job_id=state.job_id,
            delivery_id=f"evt_{state.job_id}_{state.final_status}",
            url=state.webhook.url,
            secret=state.webhook.secret,
            created_at=self.clock(),
        )
        sends.append(Send(topics.WEBHOOKS, key, to_bytes(delivery)))
        return Outcome(sends, finalised=state.job_id, webhook=delivery)

    def published(self, job_id: str) -> None:
        """The final body of ``job_id`` was sent: mark it, forget its batches and media (keep
        the viewer's keyframes of scenes and sections)."""
        state = self.load(job_id)
        if state is None or state.final_status is None:
            return
        state.published = True
        state.last_progress = self.clock()  # the retention counts from here
        self.save(state)
        segments = self.segment_records(state)
        for key, *_ in self._batch_keys(state, segments):
            if key in self.batches:
                del self.batches[key]
        for index in segments:
            self.segments.pop(segment_record_key(job_id, index), None)
        for prefix in keys.transient_prefixes(job_id):
            self.blobs.delete_prefix(prefix)
        if state.media_type == "video":
            keyframes.prune_video_keyframes(self.blobs, job_id, state.keyframe_times)
        self.last_status.pop(job_id, None)
        self.deadline_sent.discard(job_id)
        self.reconcile_sent.pop(job_id, None)
        log.info("job %s %s", job_id, state.final_status)

    def _status(self, state: JobState, body: bytes | None = None) -> Send:
        """A status: ``body``, or without it the job's final body as kept."""
        self.last_status[state.job_id] = time.monotonic()
        key = keys.job_key(state.job_id)
        if body is None:
            return Send(topics.JOB_STATUS, key, stored=keys.final_body(state.job_id))
        return Send(topics.JOB_STATUS, key, body)

    def value_of(self, send: Send) -> bytes:
        """What ``send`` carries: its value, or the final body it names, read now."""
        return send.value if send.stored is None else self.blobs.get_bytes(send.stored)

    async def _reconcile(self, state: JobState, after_restart: bool = False) -> Outcome:
        """Work was lost somewhere (a crash between a commit and its effects): count the job's
        totals again from its segments' records, then decode the incomplete segments again;
        every stage redoes them and duplicates are ignored."""
        recent = state.last_progress > (self.started_at if after_restart else 0.0)
        if recent and self.clock() - state.last_progress < self.settings.stall_timeout_s:
            return Outcome()  # progress since the timer looked
        if not after_restart and self._work_moving():
            return Outcome()  # the job waits its turn (a restart may have lost work: not then)
        segments = self.segment_records(state)
        assembly.recount(state, segments)
        if assembly.is_complete(state):  # only the job's totals had fallen behind
            return await self._finalise(state)
        missing = assembly.incomplete_segments(state, segments)
        # segments the totals had missed release the next ones, as their reports would have
        release = self._release(state)
        exhausted = state.reconciliations >= self.settings.max_reconciliations
        if not release and (exhausted or not missing):
            state.error = JobError(
                code=ErrorCode.internal,
                message=f"no progress after {state.reconciliations} reconciliations "
                f"(incomplete segments {missing})",
            )
            return await self._finalise(state)
        if missing:
            state.reconciliations += 1
            log.warning(
                "job %s stalled: decoding segments %s again (reconciliation %d; missing %s)",
                state.job_id,
                missing,
                state.reconciliations,
                assembly.what_is_missing(state, segments, missing),
            )
        state.last_progress = self.clock()
        self.save(state)
        again = [task_send(task) for i in missing if (task := segments[i].task) is not None]
        return Outcome(release + again)

    def _expired(self, job_id: str, raw: dict[str, Any], now: float) -> bool:
        """A published job older than the retention period (its topics' records are gone
        too), whose forgetting was not asked for yet."""
        age = now - raw.get("last_progress", 0.0)
        return (
            bool(raw.get("published"))
            and age > self.settings.retention_hours * 3600
            and job_id not in self.expiry_sent
        )

    def _work_moving(self) -> bool:
        """Whether any job here moved within the stall timeout. A job that did not move
        meanwhile waits its turn in a queue (the decoders' or a stage's): it lost nothing, and
        decoding it again would only add to the queue, then fail it after
        ``FRAMEWISE_MAX_RECONCILIATIONS`` however long the queue is."""
        return self.clock() - self.last_movement < self.settings.stall_timeout_s

    # --- the timer ----------------------------------------------------------------------------

    def due(self) -> list[Send]:
        """Jobs past Max-Processing-Time and stalled jobs, as events for :meth:`handle` (sent
        through the job-events topic, so only the agent's handler changes the tables)."""
        now = self.clock()
        sends = []
        # Once, a little after this aggregator started: jobs that have not moved since are
        # reconciled at once rather than after the stall timeout, since a crash may have
        # lost events whose offsets were committed.
        check_restart = (
            not self.restart_checked and now - self.started_at > self.settings.restart_grace_s
        )
        self.restart_checked |= check_restart
        for job_id, raw in list(self.jobs.items()):
            if raw is None:
                continue
            key = keys.job_key(job_id)
            if raw.get("final_status"):
                if self._expired(job_id, raw, now):
                    self.expiry_sent.add(job_id)
                    sends.append(Send(topics.JOB_EVENTS, key, to_bytes(JobExpired(job_id=job_id))))
                continue
            deadline = raw.get("deadline")
            if deadline is not None and now > deadline and job_id not in self.deadline_sent:
                self.deadline_sent.add(job_id)
                sends.append(Send(topics.JOB_EVENTS, key, to_bytes(DeadlinePassed(job_id=job_id))))
            last_progress = raw.get("last_progress", 0.0)
            if check_restart and last_progress < self.started_at:
                self.reconcile_sent[job_id] = now
                event = Reconcile(job_id=job_id, after_restart=True)
                sends.append(Send(topics.JOB_EVENTS, key, to_bytes(event)))
                continue
            stalled_since = max(last_progress, self.reconcile_sent.get(job_id, 0.0))
            if now - stalled_since > self.settings.stall_timeout_s and not self._work_moving():
                self.reconcile_sent[job_id] = now
                sends.append(Send(topics.JOB_EVENTS, key, to_bytes(Reconcile(job_id=job_id))))
        return sends
