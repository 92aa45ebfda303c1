"""The decode worker: plans ingested jobs and decodes their segments into frame batches.

Two agents in one consumer group (``framewise-decode``): ``plan`` reads the public ingest topic,
``decode`` reads decode tasks. A video is split into segments keyed separately, so several
decode workers (and behind them several workers of each stage) work on one video at once, and
each worker decodes ``FRAMEWISE_DECODE_CONCURRENCY`` segments at once, in threads
(``stages/decode/segment.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import faust

from framewise import keyframes, keys, topics
from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.journal import Journal
from framewise.kafka import dead_letter, in_thread, make_app, to_bytes, topic, valid_events
from framewise.media import DecodedBatch, MediaError, decode_image, resize_to
from schemas.api import ErrorCode, JobError
from schemas.messages import DecodeTask, FrameBatch, IngestRequest, JobFailed, SegmentDecoded
from stages.decode.planner import plan
from stages.decode.segment import decode_segment, store_batch
from stages.profiles import profiles

log = logging.getLogger(__name__)


def build_decode_app(settings: Settings) -> faust.App:
    app = make_app("decode", settings)
    ingest = topic(app, topics.INGEST)
    decode_tasks = topic(app, topics.DECODE_TASKS)
    job_events = topic(app, topics.JOB_EVENTS)
    frames_topics = {p: topic(app, topics.frames_topic(p)) for p in topics.PROFILES}
    blobs = BlobStore(settings.data_dir)
    journal = Journal.of(settings)  # embedded broker: what a restart must run again
    all_profiles = profiles(settings)

    @app.agent(ingest, name="framewise.plan")
    async def plan_jobs(stream):
        parse = IngestRequest.model_validate_json
        async for _, request in valid_events(
            app, topics.INGEST, stream, parse, "IngestRequest", settings.max_ingest_message_bytes
        ):
            key = keys.job_key(request.job_id)
            if journal is not None:  # a producer's own request, which the API never saw
                await in_thread(journal.keep_ingest_unless_known, request)
            try:
                planned, tasks, failed = await in_thread(plan, request, blobs, settings)
            except Exception as exc:  # unreadable media, or anything unexpected: the job fails
                if isinstance(exc, MediaError):
                    error = JobError(code=exc.code, message=exc.message)
                else:
                    log.exception("planning %s failed", request.job_id)
                    error = JobError(code=ErrorCode.internal, message=f"planning failed: {exc!r}")
                failure = JobFailed(
                    job_id=request.job_id,
                    error=error,
                    media_type=request.media_type,
                    webhook=request.webhook,
                    submitted_at=request.submitted_at,
                )
                await job_events.send(key=key, value=to_bytes(failure))
                continue
            # The plan goes first: the aggregator must know a job before its results arrive.
            await job_events.send(key=key, value=to_bytes(planned))
            for item in failed:
                await job_events.send(key=key, value=to_bytes(item))
            for task in tasks[: planned.released]:  # the rest: released by the aggregator
                await decode_tasks.send(
                    key=keys.segment_key(task.job_id, task.segment_index), value=to_bytes(task)
                )

    async def send(message: FrameBatch) -> None:
        key = keys.batch_key(message.job_id, message.segment_index, message.batch_index)
        await frames_topics[message.profile].send(key=key, value=to_bytes(message))

    # Segments are decoded on these threads only: each thread keeps its decoder's and OpenCV's
    # buffers, so a worker's memory stays what two threads hold however many segments it saw.
    decoders = ThreadPoolExecutor(settings.decode_concurrency, thread_name_prefix="decode")

    async def decode_video(task: DecodeTask, counts: Counter) -> int:
        loop = asyncio.get_running_loop()

        def send_from_thread(message: FrameBatch) -> None:
            asyncio.run_coroutine_threadsafe(send(message), loop).result()

        found, frames = await loop.run_in_executor(
            decoders, decode_segment, task, blobs, settings, send_from_thread
        )
        counts.update(found)
        return frames

    async def decode_one_image(task: DecodeTask, counts: Counter) -> int:
        data = await in_thread(blobs.get_bytes, task.blob_key)
        image = await in_thread(decode_image, data, settings.max_pixels)
        thumbnail = await in_thread(keyframes.encode, image)
        blobs.put_bytes(keys.image_thumbnail(task.job_id, task.segment_index), thumbnail)
        for name in task.profiles:
            resized = await in_thread(resize_to, image, all_profiles[name].max_side)
            batch = DecodedBatch(name, 0, [resized], 0, [0], [0.0], rate=0.0)
            await send(await in_thread(store_batch, task, batch, blobs, settings))
            counts[name] += 1
        return 1

    # Several segments at once, each on one FFmpeg thread: two single-threaded decoders keep
    # two cores busy on less CPU per frame than FFmpeg's frame threads on one segment.
    @app.agent(decode_tasks, name="framewise.decode", concurrency=settings.decode_concurrency)
    async def decode(stream):
        parse = DecodeTask.model_validate_json
        async for event, task in valid_events(
            app, topics.DECODE_TASKS, stream, parse, "DecodeTask"
        ):
            if task.deadline is not None and time.time() > task.deadline:
                continue  # the aggregator fails the job at its deadline
            counts: Counter = Counter()
            error = None
            frames = 0
            try:
                if task.media_type == "video":
                    frames = await decode_video(task, counts)
                else:
                    frames = await decode_one_image(task, counts)
            except MediaError as exc:
                error = JobError(code=exc.code, message=exc.message)
            except FileNotFoundError:
                error = JobError(
                    code=ErrorCode.unsupported_media, message="the media is no longer stored"
                )
            except Exception as exc:  # never let one task kill the agent
                log.exception("decoding %s segment %s failed", task.job_id, task.segment_index)
                error = JobError(code=ErrorCode.internal, message=f"decode failed: {exc!r}")
                await dead_letter(app, topics.DECODE_TASKS, event, f"decode failed: {exc!r}")
            done = SegmentDecoded(
                job_id=task.job_id,
                segment_index=task.segment_index,
                batches=dict(counts),
                frames=frames,
                error=error,
            )
            await job_events.send(key=keys.job_key(task.job_id), value=to_bytes(done))

    return app
