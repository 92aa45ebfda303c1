"""Job status for the API, materialised from ``framewise.job-status.v1``.

Every API replica reads the whole status topic from the beginning into memory, so status is
readable from any replica and survives an API restart; the aggregator is the topic's writer
(the API itself writes only ``queued``). Latency samples come from the same records.
"""

from __future__ import annotations

import json
from collections import deque
from datetime import datetime

from framewise import topics
from framewise.config import Settings
from framewise.topic_view import TopicView

LATENCY_WINDOW = 200  # recent finished jobs per media type


class StatusView:
    def __init__(self, settings: Settings) -> None:
        self.jobs: dict[str, bytes] = {}
        self.latency: dict[str, deque[float]] = {
            "video": deque(maxlen=LATENCY_WINDOW),
            "image": deque(maxlen=LATENCY_WINDOW),
        }
        self._sampled: set[str] = set()
        self.view = TopicView(settings, topics.JOB_STATUS.name, self._on_record)

    async def start(self) -> None:
        await self.view.start()

    async def stop(self) -> None:
        await self.view.stop()

    async def caught_up(self, timeout: float = 2.0) -> None:
        await self.view.caught_up(timeout)

    def _on_record(self, job_id: str, body: bytes | None) -> None:
        if body:
            self.apply(job_id, body)

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
