"""The webhook worker: delivers final bodies, reports the outcome, dead-letters exhausted ones."""

from __future__ import annotations

import logging

import faust

from framewise import keys, topics
from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.journal import Journal
from framewise.kafka import dead_letter, in_thread, make_app, to_bytes, topic, valid_events
from schemas.messages import WebhookDelivery, WebhookOutcome
from stages.webhook.delivery import DeliveryResult, WebhookSender
from stages.webhook.scheduler import DeliveryScheduler

log = logging.getLogger(__name__)


def build_webhook_app(settings: Settings) -> faust.App:
    app = make_app("webhook", settings)
    source = topic(app, topics.WEBHOOKS)
    job_events = topic(app, topics.JOB_EVENTS)
    sender = WebhookSender(
        allow_private=settings.webhook_allow_private,
        max_attempts=settings.webhook_max_attempts,
        backoff_s=settings.webhook_backoff_s,
        backoff_max_s=settings.webhook_backoff_max_s,
        timeout_s=settings.webhook_timeout_s,
    )

    # Attempts made per delivery, kept in the shared blob store: a worker that dies mid-way
    # leaves the count for the next one, so retries and the reported count stay true.
    blobs = BlobStore(settings.data_dir)
    journal = Journal.of(settings)  # keeps each delivery until its outcome is out

    def attempts_made(delivery_id: str) -> int:
        try:
            return int(blobs.get_bytes(keys.webhook_attempts(delivery_id)))
        except (FileNotFoundError, ValueError):
            return 0

    scheduler = DeliveryScheduler(
        per_target=settings.webhook_per_target, total=settings.webhook_concurrency, backlog=4096
    )

    # Deliveries run as tasks, a few per target at most, so receivers that hang cannot hold
    # back the others; each message is acknowledged (its offset may be committed) only when
    # its delivery has ended, so a crash redelivers what was in flight.
    @app.agent(source, name="framewise.webhook")
    async def deliver(stream):
        manual = stream.noack()
        parse = WebhookDelivery.model_validate_json
        async for event, delivery in valid_events(
            app, topics.WEBHOOKS, manual, parse, "WebhookDelivery", on_invalid=manual.ack
        ):
            await scheduler.submit(
                delivery.url, lambda event=event, delivery=delivery: run(manual, event, delivery)
            )

    async def run(manual, event, delivery: WebhookDelivery) -> None:
        try:
            await deliver_one(event, delivery)
        finally:
            await manual.ack(event)

    async def deliver_one(event, delivery: WebhookDelivery) -> None:
        async def count(attempt: int) -> None:
            blobs.put_bytes(keys.webhook_attempts(delivery.delivery_id), str(attempt).encode())

        try:  # read only now: a backlog of deliveries holds no bodies
            body = await in_thread(blobs.get_bytes, keys.final_body(delivery.job_id))
        except (FileNotFoundError, ValueError):  # past the retention, or not a job id
            result = DeliveryResult(False, 0, "the job's body is not stored")
        else:
            result = await sender.deliver(
                delivery.url,
                delivery.delivery_id,
                body,
                delivery.secret,
                made=attempts_made(delivery.delivery_id),
                on_attempt=count,
            )
        log.info(
            "webhook %s: delivered=%s attempts=%d",
            delivery.delivery_id,
            result.delivered,
            result.attempts,
        )
        if not result.delivered:
            await dead_letter(
                app,
                topics.WEBHOOKS,
                event,
                f"webhook undeliverable after {result.attempts} attempts: {result.last_error}",
                value=to_bytes(delivery.model_copy(update={"secret": None})),
            )
        outcome = WebhookOutcome(
            job_id=delivery.job_id,
            delivery_id=delivery.delivery_id,
            delivered=result.delivered,
            attempts=result.attempts,
            last_error=result.last_error,
        )
        sent = await job_events.send(key=keys.job_key(delivery.job_id), value=to_bytes(outcome))
        blobs.path(keys.webhook_attempts(delivery.delivery_id)).unlink(missing_ok=True)
        if journal is not None:
            await sent  # the broker has the outcome: the delivery has ended for good
            journal.forget_webhook(delivery.job_id)

    return app
