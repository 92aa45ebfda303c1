"""Everything the API writes to Kafka, through one producer: a job's ``queued`` status and
its ingest request, allowlist records and enrolment requests."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from framewise import keys, topics
from framewise.config import Settings
from framewise.kafka import to_bytes
from framewise.metrics import JOBS_ACCEPTED
from ingest_api.status_view import OWNER_HEADER, StatusView
from schemas.messages import AllowlistEnrollment, AllowlistRecord, IngestRequest


class Publisher:
    def __init__(self, settings: Settings, view: StatusView) -> None:
        self.settings = settings
        self.view = view
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap,
            max_request_size=self.settings.max_message_bytes,
            acks="all",
            enable_idempotence=False,
        )
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send(self, topic: topics.TopicSpec, key: bytes, value: bytes | None, headers=None):
        assert self.producer is not None, "the publisher is not started"
        await self.producer.send_and_wait(topic.name, value, key=key, headers=headers)

    async def submit(self, queued_body: bytes, request: IngestRequest, owner: str | None) -> None:
        """The job's ``queued`` status (with its owner) first, then the ingest request: the
        status view knows a job before any worker does."""
        key = keys.job_key(request.job_id)
        self.view.owners[request.job_id] = owner or ""
        JOBS_ACCEPTED.labels(request.media_type).inc()
        self.view.apply(request.job_id, queued_body)
        headers = [(OWNER_HEADER, owner.encode())] if owner else None
        await self.send(topics.JOB_STATUS, key, queued_body, headers)
        await self.send(topics.INGEST, key, to_bytes(request))

    async def enrol(self, record: AllowlistRecord, request: AllowlistEnrollment) -> None:
        key = record.identity_id.encode()
        await self.send(topics.ALLOWLIST, key, to_bytes(record))
        await self.send(topics.ALLOWLIST_REQUESTS, key, to_bytes(request))

    async def remove_identity(self, identity_id: str) -> None:
        await self.send(topics.ALLOWLIST, identity_id.encode(), None)  # a tombstone
