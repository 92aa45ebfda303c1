"""A topic read whole into memory by every process that needs it (no consumer group): the
job status view of each API replica, the allowlist of each face worker and API replica."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from framewise.config import Settings
from framewise.kafka import fetch_wait

log = logging.getLogger(__name__)


class TopicView:
    def __init__(
        self,
        settings: Settings,
        topic: str,
        on_record: Callable[[str, bytes | None, dict[str, bytes]], None],
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.on_record = on_record
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None
        self._partitions: list[TopicPartition] = []

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=self.settings.max_message_bytes,
            fetch_max_bytes=self.settings.max_message_bytes * 4,
            **fetch_wait(self.settings),
        )
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            await self._consumer.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(self.topic) or {0}
        self._partitions = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer:
            await self._consumer.stop()

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                async for message in self._consumer:
                    if message.key:
                        headers = {k: v for k, v in (message.headers or ())}
                        self.on_record(message.key.decode(), message.value, headers)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep following through broker hiccups and bad records
                log.exception("%s view: error, continuing", self.topic)
                await asyncio.sleep(1.0)

    async def caught_up(self, timeout: float = 2.0) -> None:
        """Wait until everything written so far has been read (read-your-writes across
        replicas: another replica may have written a moment ago)."""
        assert self._consumer is not None
        try:
            ends = await self._consumer.end_offsets(self._partitions)
        except Exception:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            positions = [await self._consumer.position(tp) for tp in ends]
            if all(p >= end for p, end in zip(positions, ends.values(), strict=True)):
                return
            await asyncio.sleep(0.02)
