"""The aggregator worker: the Faust side of :class:`~stages.aggregator.aggregator.Aggregator`.

Every event about a job arrives on ``framewise.job-events.v1`` keyed by job id (so one
aggregator partition owns a job). The agent parses it (dead-lettering what does not parse),
lets the aggregator decide, and sends what it returns; the tables are Faust tables whose
changelogs make the state survive a restart.
"""

from __future__ import annotations

import logging

import faust

from framewise import topics
from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.journal import Journal
from framewise.kafka import (
    dead_letter,
    in_thread,
    make_app,
    table_topic_configs,
    topic,
    valid_events,
)
from framewise.memory import map_large_buffers
from schemas.messages import job_event_adapter
from stages.aggregator.aggregator import Aggregator, Outcome, Send

log = logging.getLogger(__name__)


def build_aggregator_app(settings: Settings) -> faust.App:
    map_large_buffers()  # a long video's body is megabytes, copied a few times when sent
    # Its messages are job bodies: a long video's final body is megabytes, and lists each
    # person again in every scene they are in (gzip made the 9.6 min video's 2.8 MB body
    # 0.77 MB in 46 ms). The broker keeps less, and every Kafka client reads gzip.
    app = make_app("aggregator", settings, compression="gzip")
    events_spec = topics.JOB_EVENTS
    outputs = {
        spec.name: topic(app, spec)
        for spec in (
            topics.JOB_EVENTS,
            topics.JOB_STATUS,
            topics.RESULTS,
            topics.WEBHOOKS,
            topics.DECODE_TASKS,
        )
    }
    changelog = table_topic_configs(settings)
    tables = [
        app.Table(name, default=None, partitions=settings.partitions, extra_topic_configs=changelog)
        for name in ("jobs", "segments", "batches")
    ]
    aggregator = Aggregator(*tables, settings, BlobStore(settings.data_dir), offload=in_thread)
    journal = Journal.of(settings)  # keeps webhook deliveries durable (embedded broker)

    async def send(sends: list[Send], delivered: bool = False) -> None:
        for message in sends:
            if message.stored is not None:
                await send_stored(message)
                continue
            sent = await outputs[message.topic.name].send(key=message.key, value=message.value)
            if delivered:
                await sent

    async def send_stored(message: Send) -> None:
        """A final body, read from the blob store and handed straight to the Kafka client,
        which copies it into its batch: once that returns, nothing here holds it while the
        client encodes its request (a Faust topic's send would keep it until delivered)."""
        delivery = await app.producer.send(
            message.topic.name, message.key, aggregator.value_of(message), None, None, None
        )
        await delivery

    async def carry_out(outcome: Outcome) -> None:
        if outcome.finalised is None:
            await send(outcome.sends)
            return
        # A final body is marked published only once the broker has it, and its sends go one
        # at a time: a long video's body is megabytes, and the producer copies what it holds.
        if outcome.webhook is not None and journal is not None:
            journal.keep_webhook(outcome.webhook)  # repeated after a crash: the same file
        await send(outcome.sends, delivered=True)
        aggregator.published(outcome.finalised)  # table writes stay on the event loop

    @app.agent(outputs[events_spec.name], name="framewise.aggregate")
    async def aggregate(stream):
        parse = job_event_adapter.validate_json
        async for event, parsed in valid_events(app, events_spec, stream, parse, "job event"):
            try:
                await carry_out(await aggregator.handle(parsed))
            except Exception as exc:
                log.exception("aggregating %s failed", parsed.job_id)
                await dead_letter(app, events_spec, event, f"aggregator error: {exc!r}")

    @app.timer(interval=settings.deadline_check_interval_s)
    async def watch_jobs() -> None:
        """Fail jobs past Max-Processing-Time and reconcile stalled ones."""
        await send(aggregator.due())

    return app
