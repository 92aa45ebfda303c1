"""The aggregator worker: a Faust table keyed by job that assembles stage results.

It is the single writer of job status. Every event about a job arrives on
``framewise.job-events.v1`` keyed by job id (so one aggregator partition owns a job), is applied
to the ``jobs`` table and, once every enabled stage has reported every batch, the job is
finalised exactly once: its body goes to the status and results topics and, if asked, to the
webhook worker. Redelivered events are recognised (batch keys, segment numbers, the
``final_status`` flag) and change nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict

import faust

from framewise import keyframes, topics
from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.kafka import (
    dead_letter,
    in_thread,
    make_app,
    table_topic_configs,
    to_bytes,
    topic,
    valid_events,
)
from schemas.api import ErrorCode, JobError, JobStatus, WebhookStatus
from schemas.messages import (
    BatchResult,
    DeadlinePassed,
    JobFailed,
    JobPlanned,
    JobState,
    Reconcile,
    SegmentDecoded,
    WebhookDelivery,
    WebhookOutcome,
    job_event_adapter,
)
from stages.aggregator import assembly
from stages.registry import stages

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 1.0  # at most one progress update per job and second


def batch_key(job_id: str, stage: str, segment: int, batch: int) -> str:
    return f"{job_id}|{stage}|{segment}|{batch}"


def build_aggregator_app(settings: Settings) -> faust.App:
    app = make_app("aggregator", settings)
    events_spec = topics.JOB_EVENTS
    job_events = topic(app, events_spec)
    status_topic = topic(app, topics.JOB_STATUS)
    results_topic = topic(app, topics.RESULTS)
    webhooks_topic = topic(app, topics.WEBHOOKS)
    decode_topic = topic(app, topics.DECODE_TASKS)
    blobs = BlobStore(settings.data_dir)
    changelog = table_topic_configs(settings)
    jobs = app.Table(
        "jobs",
        default=None,
        partitions=settings.partitions,
        extra_topic_configs=changelog,
    )
    batches = app.Table(
        "batches",
        default=None,
        partitions=settings.partitions,
        extra_topic_configs=changelog,
    )
    last_status: dict[str, float] = {}
    deadline_sent: set[str] = set()
    reconcile_sent: dict[str, float] = {}

    def load(job_id: str) -> JobState | None:
        raw = jobs.get(job_id)
        return JobState.model_validate(raw) if raw is not None else None

    def save(state: JobState) -> None:
        jobs[state.job_id] = state.model_dump(mode="json", exclude_none=True)

    async def publish_status(state: JobState, body_json: bytes) -> None:
        await status_topic.send(key=state.job_id.encode(), value=body_json)
        last_status[state.job_id] = time.monotonic()

    def payloads_of(state: JobState) -> dict[str, list[tuple[int, int, dict]]]:
        out: dict[str, list[tuple[int, int, dict]]] = defaultdict(list)
        for stage in state.stages:
            profile = stages()[stage].profile
            for seg_key, segment in state.segments.items():
                for b in range(segment.batches.get(profile, 0)):
                    payload = batches.get(batch_key(state.job_id, stage, int(seg_key), b))
                    if payload is not None:
                        out[stage].append((int(seg_key), b, payload))
        return out

    def forget_batches(state: JobState) -> None:
        for stage in state.stages:
            profile = stages()[stage].profile
            for seg_key, segment in state.segments.items():
                for b in range(segment.batches.get(profile, 0)):
                    key = batch_key(state.job_id, stage, int(seg_key), b)
                    if key in batches:
                        del batches[key]

    async def finalize(state: JobState) -> None:
        status = JobStatus.failed if state.error is not None else JobStatus.finished
        try:  # stage finalisers (shots, clustering, merging) run off the event loop
            body = await in_thread(assembly.job_body, state, payloads_of(state), settings, status)
        except Exception as exc:  # a stage's finaliser failed: report it, never hang the job
            log.exception("finalising %s failed", state.job_id)
            state.error = JobError(code=ErrorCode.internal, message=f"finalising failed: {exc}")
            status = JobStatus.failed
            body = assembly.job_body(state, None, settings, status)
        state.final_status = status.value
        state.final_body = body.model_dump_json(exclude_none=True)
        if state.webhook is not None:
            state.webhook_status = WebhookStatus(delivered=False, attempts=0)
        save(state)  # the body is kept before anything is published or forgotten
        await publish_final(state)

    async def publish_final(state: JobState) -> None:
        """Publish a final body and then forget the job's batches; repeated (at-least-once)
        when a crash came between keeping the body and marking it published."""
        assert state.final_body is not None and state.final_status is not None
        key = state.job_id.encode()
        body_json = state.final_body.encode()
        await publish_status(state, body_json)
        await results_topic.send(key=key, value=body_json)
        if state.webhook is not None:
            delivery = WebhookDelivery(
                job_id=state.job_id,
                delivery_id=f"evt_{state.job_id}_{state.final_status}",
                url=state.webhook.url,
                secret=state.webhook.secret,
                body=state.final_body,
                created_at=time.time(),
            )
            await webhooks_topic.send(key=key, value=to_bytes(delivery))
        state.published = True
        save(state)
        forget_batches(state)
        blobs.delete_prefix(f"frames/{state.job_id}")
        blobs.delete_prefix(f"uploads/{state.job_id}")
        if state.media_type == "video":
            result = json.loads(state.final_body).get("result") or {}
            await in_thread(keyframes.prune_video_keyframes, blobs, state.job_id, result)
        log.info("job %s %s", state.job_id, state.final_status)

    async def after_change(state: JobState) -> None:
        state.last_progress = time.time()
        if assembly.is_complete(state):
            await finalize(state)
            return
        state.progress = assembly.progress(state)
        save(state)
        if time.monotonic() - last_status.get(state.job_id, 0.0) >= STATUS_INTERVAL_S:
            body = assembly.job_body(state, None, settings, JobStatus.processing)
            await publish_status(state, body.model_dump_json(exclude_none=True).encode())

    async def handle(event) -> None:
        job_id = event.job_id
        state = load(job_id)
        if isinstance(event, WebhookOutcome):
            if state is None or state.final_body is None:
                return
            state.webhook_status = WebhookStatus(
                delivered=event.delivered, attempts=event.attempts, last_error=event.last_error
            )
            body = state.final_body.encode()
            patched = assembly.with_webhook_status(body, state.webhook_status)
            state.final_body = patched.decode()
            save(state)
            await publish_status(state, patched)
            return
        if state is not None and state.final_status is not None:
            if not state.published:  # a crash came between keeping and publishing the body
                await publish_final(state)
            return  # already final: a redelivery or a late result changes nothing
        if isinstance(event, JobPlanned):
            if state is None:
                state = assembly.state_from_plan(event)
                await after_change(state)
        elif isinstance(event, JobFailed):
            state = state or assembly.state_from_failure(event)
            state.error = event.error
            await finalize(state)
        elif state is None:
            log.warning("event for unknown job %s dropped: %s", job_id, event.kind)
        elif isinstance(event, SegmentDecoded):
            if assembly.record_segment(state, event):
                await after_change(state)
        elif isinstance(event, BatchResult):
            key = batch_key(job_id, event.stage, event.segment_index, event.batch_index)
            if event.stage not in state.stages:
                return
            # The payload is written before the state that counts it: a crash between the two
            # leaves an uncounted payload, which the redelivered event counts. A batch is a
            # duplicate only when it is both counted and stored.
            counted = assembly.record_batch(
                state, event.stage, event.segment_index, event.batch_index
            )
            if not counted and key in batches:
                return
            batches[key] = event.payload
            if event.error is not None:
                state.error = event.error
            await after_change(state)
        elif isinstance(event, DeadlinePassed):
            state.error = assembly.timeout_error()
            await finalize(state)
        elif isinstance(event, Reconcile):
            await reconcile(state)

    async def reconcile(state: JobState) -> None:
        """Work was lost somewhere (a crash between a commit and its effects): decode the
        incomplete segments again; every stage redoes them and duplicates are ignored."""
        if time.time() - state.last_progress < settings.stall_timeout_s:
            return  # progress since the timer looked
        missing = assembly.incomplete_segments(state)
        if state.reconciliations >= settings.max_reconciliations or not missing:
            state.error = JobError(
                code=ErrorCode.internal,
                message=f"no progress after {state.reconciliations} reconciliations "
                f"(incomplete segments {missing})",
            )
            await finalize(state)
            return
        state.reconciliations += 1
        log.warning(
            "job %s stalled: decoding segments %s again (reconciliation %d)",
            state.job_id,
            missing,
            state.reconciliations,
        )
        for task in state.decode_tasks:
            if task.segment_index in missing:
                await decode_topic.send(
                    key=f"{task.job_id}:{task.segment_index}".encode(), value=to_bytes(task)
                )
        state.last_progress = time.time()
        save(state)

    @app.agent(job_events, name="framewise.aggregate")
    async def aggregate(stream):
        parse = job_event_adapter.validate_json
        async for event, parsed in valid_events(app, events_spec, stream, parse, "job event"):
            try:
                await handle(parsed)
            except Exception as exc:
                log.exception("aggregating %s failed", parsed.job_id)
                await dead_letter(app, events_spec, event, f"aggregator error: {exc!r}")

    @app.timer(interval=settings.deadline_check_interval_s)
    async def watch_jobs() -> None:
        """Fail jobs past Max-Processing-Time and reconcile stalled ones; the events go through
        the agent like any other, so only it changes the tables."""
        now = time.time()
        for job_id, raw in list(jobs.items()):
            if raw is None or raw.get("final_status"):
                continue
            deadline = raw.get("deadline")
            if deadline is not None and now > deadline and job_id not in deadline_sent:
                deadline_sent.add(job_id)
                await job_events.send(
                    key=job_id.encode(), value=to_bytes(DeadlinePassed(job_id=job_id))
                )
            stalled_since = max(raw.get("last_progress", 0.0), reconcile_sent.get(job_id, 0.0))
            if now - stalled_since > settings.stall_timeout_s:
                reconcile_sent[job_id] = now
                await job_events.send(key=job_id.encode(), value=to_bytes(Reconcile(job_id=job_id)))

    return app
