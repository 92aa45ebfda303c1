"""The aggregator worker: a Faust table keyed by job that assembles stage results.

It is the single writer of job status. Every event about a job arrives on
``framewise.job-events.v1`` keyed by job id (so one aggregator partition owns a job), is applied
to the ``jobs`` table and, once every enabled stage has reported every batch, the job is
finalised exactly once: its body goes to the status and results topics and, if asked, to the
webhook worker. Redelivered events are recognised (batch keys, segment numbers, the
``final_status`` flag) and change nothing.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

import faust

from framewise import topics
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
        body_json = body.model_dump_json(exclude_none=True)
        state.final_status = status.value
        state.final_body = body_json
        if state.webhook is not None:
            state.webhook_status = WebhookStatus(delivered=False, attempts=0)
        forget_batches(state)
        save(state)
        key = state.job_id.encode()
        await publish_status(state, body_json.encode())
        await results_topic.send(key=key, value=body_json.encode())
        if state.webhook is not None:
            delivery = WebhookDelivery(
                job_id=state.job_id,
                delivery_id=f"evt_{state.job_id}_{status.value}",
                url=state.webhook.url,
                secret=state.webhook.secret,
                body=body_json,
                created_at=time.time(),
            )
            await webhooks_topic.send(key=key, value=to_bytes(delivery))
        blobs.delete_prefix(f"frames/{state.job_id}")
        blobs.delete_prefix(f"uploads/{state.job_id}")
        log.info("job %s %s", state.job_id, status.value)

    async def after_change(state: JobState) -> None:
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
            if event.stage not in state.stages or key in batches:
                return
            if event.error is not None:
                state.error = event.error
            batches[key] = event.payload
            state.done[event.stage] = state.done.get(event.stage, 0) + 1
            await after_change(state)
        elif isinstance(event, DeadlinePassed):
            state.error = assembly.timeout_error()
            await finalize(state)

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
    async def enforce_deadlines() -> None:
        """Fail jobs past Max-Processing-Time; the event goes through the agent like any other."""
        now = time.time()
        for job_id, raw in list(jobs.items()):
            if raw is None or raw.get("final_status") or job_id in deadline_sent:
                continue
            deadline = raw.get("deadline")
            if deadline is not None and now > deadline:
                deadline_sent.add(job_id)
                await job_events.send(
                    key=job_id.encode(), value=to_bytes(DeadlinePassed(job_id=job_id))
                )

    return app
