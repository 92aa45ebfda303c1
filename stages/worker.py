"""The thin Faust agent every analysis stage runs: frame batch in, ``BatchResult`` out.

The stage's own code (its :class:`~stages.registry.BatchAnalyzer`) never sees Kafka; this agent
validates the message, drops work of cancelled jobs, runs the analyzer off the event loop and
dead-letters what it cannot process, so one bad message never stops the consumer.

``FRAMEWISE_STAGE_CONCURRENCY`` batches are analysed at once, on as many threads; batches of one
segment of one job (``sequence_of``) take turns in the order they arrived, because a stage may
compare a frame with the one before it (OCR and faces do).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator

import faust

from framewise import frame_files, keys, topics
from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.kafka import dead_letter, in_thread, make_app, to_bytes, topic, valid_events
from framewise.metrics import STAGE_BATCHES, STAGE_FRAMES, STAGE_SECONDS
from framewise.picture_change import sequence_of
from schemas.api import ErrorCode, JobError
from schemas.messages import BatchResult, FrameBatch
from stages.spec import StageSpec, sampled

log = logging.getLogger(__name__)


class SequenceTurns:
    """One analysis at a time per sequence of frames, first come first served (asyncio's locks
    are fair); other sequences run beside it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: Counter[str] = Counter()

    @contextlib.asynccontextmanager
    async def turn(self, sequence: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(sequence, asyncio.Lock())
        self._holders[sequence] += 1
        try:
            async with lock:
                yield
        finally:
            self._holders[sequence] -= 1
            if not self._holders[sequence]:
                del self._holders[sequence], self._locks[sequence]


def build_stage_app(spec: StageSpec, settings: Settings) -> faust.App:
    app = make_app(spec.name, settings)
    source_spec = topics.frames_topic(spec.profile)
    source = topic(app, source_spec)
    job_events = topic(app, topics.JOB_EVENTS)
    blobs = BlobStore(settings.data_dir)
    analyzer = spec.make_analyzer(settings)
    if spec.attach is not None:
        spec.attach(app, settings, analyzer)
    turns = SequenceTurns()

    @app.agent(source, name=f"framewise.{spec.name}", concurrency=settings.stage_concurrency)
    async def analyse(stream):
        parse = FrameBatch.model_validate_json
        async for event, batch in valid_events(app, source_spec, stream, parse, "FrameBatch"):
            if spec.name not in batch.stages:
                continue
            if batch.deadline is not None and time.time() > batch.deadline:
                log.info("%s: dropping a batch of %s, past its deadline", spec.name, batch.job_id)
                continue
            error = None
            payload: dict = {}
            started = time.perf_counter()
            try:
                wanted = spec.samples(batch, settings)
                if wanted is not None:
                    batch = sampled(batch, wanted)
                async with turns.turn(sequence_of(batch)):
                    frames = await in_thread(frame_files.load, blobs, batch.blob_key, wanted)
                    payload = await in_thread(analyzer.analyze, frames, batch)
                STAGE_SECONDS.labels(spec.name).observe(time.perf_counter() - started)
                STAGE_FRAMES.labels(spec.name).inc(len(frames) - batch.context_frames)
            except FileNotFoundError:
                log.info("%s: frames of %s are gone (job ended); skipping", spec.name, batch.job_id)
                continue
            except Exception as exc:
                log.exception("%s failed on %s", spec.name, batch.blob_key)
                error = JobError(code=ErrorCode.internal, message=f"{spec.name} stage: {exc}")
                await dead_letter(app, source_spec, event, f"{spec.name} stage failed: {exc!r}")
            STAGE_BATCHES.labels(spec.name, "failed" if error else "ok").inc()
            result = BatchResult(
                job_id=batch.job_id,
                stage=spec.name,
                segment_index=batch.segment_index,
                batch_index=batch.batch_index,
                payload=payload,
                error=error,
            )
            await job_events.send(key=keys.job_key(batch.job_id), value=to_bytes(result))

    return app
