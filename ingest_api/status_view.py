"""Job status for the API, materialised from ``framewise.job-status.v1``.

Every API replica reads the whole status topic from the beginning into memory, so status is
readable from any replica and survives an API restart; the aggregator is the topic's writer
(the API itself writes only ``queued``). Latency samples come from the same records.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from framewise import topics
from framewise.config import Settings

log = logging.getLogger(__name__)

LATENCY_WINDOW = 200  # recent finished jobs per media type


class StatusView:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jobs: dict[str, bytes] = {}
        self.latency: dict[str, deque[float]] = {
            "video": deque(maxlen=LATENCY_WINDOW),
            "image": deque(maxlen=LATENCY_WINDOW),
        }
        self._sampled: set[str] = set()
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
        )
        await self._consumer.start()
        name = topics.JOB_STATUS.name
        partitions = self._consumer.partitions_for_topic(name)
        if not partitions:
            await self._consumer.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(name) or {0}
        self._partitions = [TopicPartition(name, p) for p in sorted(partitions)]
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
                    if message.key and message.value:
                        self.apply(message.key.decode(), message.value)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep following through broker hiccups
                log.exception("status view: consumer error, retrying")
                await asyncio.sleep(1.0)

    def apply(self, job_id: str, body: bytes) -> None:
        self.jobs[job_id] = body
        if job_id in self._sampled:
            return
        try:
            parsed = json.loads(body)
        except ValueError:
            return
        if parsed.get("status") != "finished":
            return
        self._sampled.add(job_id)
        sample = _latency_sample(parsed)
        if sample is not None:
            self.latency["video" if job_id.startswith("video_") else "image"].append(sample)

    async def caught_up(self, timeout: float = 2.0) -> None:
        """Wait until this replica has read everything written so far (read-your-writes across
        replicas: another replica may have accepted the job a moment ago)."""
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


def _latency_sample(body: dict) -> float | None:
    """Milliseconds of server-side processing per media unit for one finished job."""
    try:
        elapsed_ms = (
            datetime.fromisoformat(body["updated_at"]) - datetime.fromisoformat(body["created_at"])
        ).total_seconds() * 1000
    except (KeyError, TypeError, ValueError):
        return None
    if "items" in body:
        units = len(body["items"])
    else:
        units = ((body.get("result") or {}).get("metadata") or {}).get("duration_seconds") or 0
    return elapsed_ms / units if units else None
