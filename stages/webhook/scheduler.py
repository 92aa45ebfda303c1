"""Webhook deliveries run side by side, at most a few per target, so receivers that hang or
refuse cannot hold back the others' deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit


def target_of(url: str) -> str:
    """Deliveries are limited per scheme, host and port."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or ''}"


class DeliveryScheduler:
    """``submit`` returns once a delivery is admitted (at most ``backlog`` waiting or running),
    not when it is done; each target has at most ``per_target`` deliveries in flight and all
    targets together at most ``total``. A delivery waiting for its target holds no place of
    the ``total``."""

    def __init__(self, per_target: int, total: int, backlog: int) -> None:
        self.per_target = per_target
        self.total = asyncio.Semaphore(total)
        self.backlog = asyncio.Semaphore(backlog)
        self.targets: dict[str, tuple[asyncio.Semaphore, int]] = {}  # semaphore, users
        self.tasks: set[asyncio.Task] = set()

    async def submit(self, url: str, delivery: Callable[[], Awaitable[None]]) -> None:
        await self.backlog.acquire()
        task = asyncio.create_task(self._run(target_of(url), delivery))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, target: str, delivery: Callable[[], Awaitable[None]]) -> None:
        semaphore, users = self.targets.get(target, (asyncio.Semaphore(self.per_target), 0))
        self.targets[target] = (semaphore, users + 1)
        try:
            async with semaphore, self.total:
                await delivery()
        finally:
            semaphore, users = self.targets[target]
            if users == 1:
                del self.targets[target]
            else:
                self.targets[target] = (semaphore, users - 1)
            self.backlog.release()

    async def drain(self) -> None:
        """Wait for every admitted delivery (tests, shutdown)."""
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
