"""Everything the API writes to Kafka, through one producer: a job's ``queued`` status and
its ingest request, allowlist records and enrolment requests.

It also watches the broker (a metadata request every few seconds), so that while the broker is
unreachable the API refuses new work at once with 503 and ``Retry-After`` instead of hanging,
and ``/healthz`` says so; a send that still fails, or takes longer than
``FRAMEWISE_PUBLISH_TIMEOUT_S``, is refused the same way.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from framewise import keys, topics
from framewise.config import Settings
from framewise.kafka import to_bytes
from framewise.metrics import JOBS_ACCEPTED
from ingest_api.status_view import StatusView
from schemas.messages import AllowlistEnrollment, AllowlistRecord, IngestRequest

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The broker did not take a message; nothing the API accepted depends on it."""


WATCH_INTERVAL_S = 2.0


class Publisher:
    def __init__(self, settings: Settings, view: StatusView) -> None:
        self.settings = settings
        self.view = view
        self.producer: AIOKafkaProducer | None = None
        self.broker_ok = True
        self._watch: asyncio.Task | None = None

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap,
            max_request_size=self.settings.max_message_bytes,
            acks="all",
            enable_idempotence=False,
        )
        await self.producer.start()
        self._watch = asyncio.create_task(self._watch_broker())

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self.producer is not None:
            await self.producer.stop()

    async def broker_reachable(self) -> bool:
        assert self.producer is not None
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), WATCH_INTERVAL_S)
        except (TimeoutError, KafkaError, OSError):
            return False
        return True

    async def _watch_broker(self) -> None:
        while True:
            reachable = await self.broker_reachable()
            if reachable != self.broker_ok:
                log.warning("broker %s", "reachable again" if reachable else "unreachable")
            self.broker_ok = reachable
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def send(self, topic: topics.TopicSpec, key: bytes, value: bytes | None, headers=None):
        assert self.producer is not None, "the publisher is not started"
        if not self.broker_ok:
            raise BrokerUnavailable("the broker is unreachable")
        try:
            await asyncio.wait_for(
                self.producer.send_and_wait(topic.name, value, key=key, headers=headers),
                self.settings.publish_timeout_s,
            )
        except (TimeoutError, KafkaError) as exc:
            self.broker_ok = False
            raise BrokerUnavailable(f"the broker did not take the message: {exc!r}") from exc

    async def submit(self, queued_body: bytes, request: IngestRequest, owner: str | None) -> None:
        """The job's ``queued`` status (with its owner) first, then the ingest request: the
        status view knows a job before any worker does."""
        key = keys.job_key(request.job_id)
        if self.view.journal is not None:  # kept before it is sent: a restart resubmits it
            self.view.journal.keep_ingest(request)
        self.view.set_owner(request.job_id, owner or "")
        self.view.apply(request.job_id, queued_body)
        headers = [(keys.OWNER_HEADER, owner.encode())] if owner else None
        try:
            await self.send(topics.JOB_STATUS, key, queued_body, headers)
            await self.send(topics.INGEST, key, to_bytes(request))
        except BrokerUnavailable:
            self.view.forget([request.job_id])  # not accepted: not counted, not shown
            raise
        JOBS_ACCEPTED.labels(request.media_type).inc()

    async def enrol(self, record: AllowlistRecord, request: AllowlistEnrollment) -> None:
        key = record.identity_id.encode()
        await self.send(topics.ALLOWLIST, key, to_bytes(record))
        await self.send(topics.ALLOWLIST_REQUESTS, key, to_bytes(request))

    async def remove_identity(self, identity_id: str) -> None:
        await self.send(topics.ALLOWLIST, identity_id.encode(), None)  # a tombstone
