"""Kafka plumbing shared by every worker: the Faust app factory, topic creation, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faust.transport import drivers as faust_transports
from faust.transport.drivers import aiokafka as faust_aiokafka
from pydantic import BaseModel, ValidationError

from framewise import topics
from framewise.config import Settings
from framewise.metrics import DEAD_LETTERS
from schemas.messages import DeadLetter

log = logging.getLogger(__name__)
T = TypeVar("T")


def to_bytes(message: BaseModel) -> bytes:
    return message.model_dump_json(exclude_none=True).encode()


def topic_configs(spec: topics.TopicSpec, settings: Settings) -> dict[str, str]:
    compact = spec.compacted and settings.compact_topics
    return {
        "cleanup.policy": "compact" if compact else "delete",
        "retention.ms": str(int(settings.retention_hours * 3600 * 1000)),
        "max.message.bytes": str(settings.max_message_bytes),
    }


def table_topic_configs(settings: Settings) -> dict[str, str]:
    """Changelog configs: compaction off on the embedded broker (its compacted end offsets
    are wrong, which would make a recovered table silently miss updates)."""
    return {"cleanup.policy": "compact" if settings.compact_topics else "delete"}


async def ensure_topics(settings: Settings) -> None:
    """Create every framewise topic (and its dead-letter topic) if missing; idempotent."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = []
        for spec in topics.ALL:
            for name in (spec.name, spec.dead_letter):
                if name not in existing:
                    wanted.append(
                        NewTopic(
                            name,
                            settings.partitions,
                            settings.replication_factor,
                            topic_configs=topic_configs(spec, settings),
                        )
                    )
        for new in wanted:  # one at a time: a concurrent creator makes only that one fail
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([new])
    finally:
        await admin.close()


def fetch_wait(settings: Settings) -> dict[str, int]:
    """aiokafka consumer arguments for ``Settings.consumer_fetch_wait_ms`` (none: its own)."""
    wait = settings.consumer_fetch_wait_ms
    return {} if wait is None else {"fetch_max_wait_ms": wait}


class FramewiseApp(faust.App):
    """A Faust app that knows how long its consumers' fetches may wait
    (``Settings.consumer_fetch_wait_ms``; None: Faust's own)."""

    fetch_wait_ms: int | None = None


class _FetchWaitConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with the fetch wait of the app's settings instead of the fixed
    1.5 s Faust passes to aiokafka (which has no setting for it)."""

    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait = cast(FramewiseApp, self.app).fetch_wait_ms
        if wait is not None:
            consumer._fetch_max_wait_ms = wait  # read when the consumer starts its fetcher
        return consumer


class _FetchWaitConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _FetchWaitConsumerThread:
        return _FetchWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)


class FetchWaitTransport(faust_aiokafka.Transport):
    """The aiokafka transport whose consumers wait the app's ``fetch_wait_ms``."""

    Consumer = _FetchWaitConsumer


TRANSPORT_SCHEME = "framewise-kafka"  # the broker URL scheme Faust resolves to it
faust_transports.TRANSPORTS.data[TRANSPORT_SCHEME] = f"{__name__}:FetchWaitTransport"


def make_app(role: str, settings: Settings, compression: str | None = None) -> faust.App:
    """A Faust app for one worker role; its id is the consumer group, so each role scales
    by starting more processes of it and different roles each see every message.
    ``compression``: the Kafka codec of what it produces (None: uncompressed)."""
    fast = settings.fast_group_timeouts
    # Tables live in memory (recovered from changelogs), so Faust's own directory is scratch.
    datadir = tempfile.mkdtemp(prefix=f"framewise-{role}-")
    extra: dict[str, Any] = {}
    if fast:
        extra.update(
            broker_session_timeout=6.0,
            broker_heartbeat_interval=1.0,
            broker_rebalance_timeout=5.0,
            broker_commit_interval=0.5,
        )
    app = FramewiseApp(
        f"framewise-{role}",
        broker=f"{TRANSPORT_SCHEME}://{settings.bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        datadir=datadir,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        producer_max_request_size=settings.max_message_bytes,
        producer_compression_type=compression,
        consumer_max_fetch_size=settings.max_message_bytes,
        consumer_auto_offset_reset="earliest",
        **extra,
    )
    app.fetch_wait_ms = settings.consumer_fetch_wait_ms
    return app


def topic(app: faust.App, spec: topics.TopicSpec) -> faust.TopicT:
    return app.topic(spec.name, value_serializer="raw", key_serializer="raw")


async def dead_letter(
    app: faust.App, spec: topics.TopicSpec, event: Any, reason: str, value: bytes | None = None
) -> None:
    """Park a message we cannot process on ``<topic>.dlq`` with the reason; never raise.

    ``value`` replaces the original bytes where those hold a secret."""
    message = event.message
    raw = value if value is not None else message.value
    if not isinstance(raw, bytes):
        raw = str(raw).encode()
    key = message.key.decode(errors="replace") if isinstance(message.key, bytes) else None
    letter = DeadLetter(
        source_topic=spec.name,
        partition=message.partition,
        offset=message.offset,
        reason=reason[:2000],
        key=key,
        value=raw[: 1024 * 1024].decode(errors="replace"),
    )
    log.warning(
        "dead-lettered %s@%s/%s: %s", spec.name, message.partition, message.offset, reason[:300]
    )
    DEAD_LETTERS.labels(spec.name).inc()
    try:
        await app.topic(spec.dead_letter, value_serializer="raw", key_serializer="raw").send(
            key=message.key, value=to_bytes(letter)
        )
    except Exception:  # a DLQ failure must not crash the consumer
        log.exception("could not dead-letter a message of %s", spec.name)


async def valid_events(
    app: faust.App,
    spec: topics.TopicSpec,
    stream: Any,
    parse: Callable[[bytes], T],
    what: str,
    max_bytes: int | None = None,
    on_invalid: Callable[[Any], Awaitable[Any]] | None = None,
) -> AsyncIterator[tuple[Any, T]]:
    """Each event of ``stream`` with its parsed value; what does not parse, or is larger than
    ``max_bytes``, is dead-lettered with the reason, so a bad message never stops the consumer
    (and handed to ``on_invalid``, e.g. to acknowledge it on a stream with manual acks)."""
    async for event in stream.events():
        size = len(event.value or b"")
        if max_bytes is not None and size > max_bytes:
            reason = f"{what} of {size} bytes exceeds the limit of {max_bytes} bytes"
        else:
            try:
                parsed = parse(event.value)
            except ValidationError as exc:
                reason = f"invalid {what}: {exc}"
            else:
                yield event, parsed
                continue
        await dead_letter(app, spec, event, reason)
        if on_invalid is not None:
            await on_invalid(event)


async def in_thread(func, *args):
    """CPU-heavy work off the event loop, so heartbeats and other partitions keep going."""
    return await asyncio.to_thread(func, *args)
