"""One decode task's work apart from Kafka: its frames decoded, scaled, stored as batches.

The decode worker runs :func:`decode_segment` in a thread for each task it holds (several at
once, ``FRAMEWISE_DECODE_CONCURRENCY``), and the benchmark runs the same function, so what is
measured is what the worker does.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from framewise import frame_files, keyframes, keys
from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.media import DecodedBatch, decode_video_segment
from schemas.messages import DecodeTask, FrameBatch
from stages.profiles import profiles

log = logging.getLogger(__name__)


def store_batch(
    task: DecodeTask, batch: DecodedBatch, blobs: BlobStore, settings: Settings
) -> FrameBatch:
    """``batch``'s frames written to the blob store, and the message that points at them."""
    blob_key = keys.frame_batch(task.job_id, batch.profile, task.segment_index, batch.batch_index)
    frame_files.store(blobs, blob_key, batch.images, settings.frame_jpeg_quality)
    return batch_message(task, batch, blob_key)


def batch_message(task: DecodeTask, batch: DecodedBatch, blob_key: str) -> FrameBatch:
    """The message of ``task``'s decoded ``batch``, whose frames are at ``blob_key``."""
    return FrameBatch(
        job_id=task.job_id,
        media_type=task.media_type,
        profile=batch.profile,
        segment_index=task.segment_index,
        batch_index=batch.batch_index,
        blob_key=blob_key,
        context_frames=batch.context_frames,
        frame_indices=batch.frame_indices,
        timestamps=batch.timestamps,
        fps=batch.rate,
        stages=task.stages,
        deadline=task.deadline,
        owner=task.owner,
    )


def decode_segment(
    task: DecodeTask, blobs: BlobStore, settings: Settings, send: Callable[[FrameBatch], None]
) -> tuple[Counter, int]:
    """Decode a video task's segment, store each batch and ``send`` its message; write the
    viewer's keyframes. Returns the batches per profile and the frames decoded. Stops early
    (what was sent stands) when the job's deadline passes or its upload is gone."""
    chosen = profiles(settings)
    selected = [chosen[p] for p in task.profiles] + [keyframes.PROFILE]
    counts: Counter = Counter()
    frames = 0
    batches = decode_video_segment(
        blobs.path(task.blob_key),
        selected,
        task.start_s,
        task.end_s,
        settings.max_pixels,
        settings.decode_threads,
    )
    try:
        for batch in batches:
            if task.deadline is not None and time.time() > task.deadline:
                log.info("decode: %s passed its deadline, stopping", task.job_id)
                break
            if not blobs.exists(task.blob_key):  # the job ended: its upload is gone
                log.info("decode: %s ended, stopping", task.job_id)
                break
            if batch.profile == keyframes.PROFILE.name:
                keyframes.write_video_keyframes(blobs, task.job_id, batch.images, batch.timestamps)
                continue
            send(store_batch(task, batch, blobs, settings))
            counts[batch.profile] += 1
            frames += len(batch.timestamps) - batch.context_frames
    finally:
        batches.close()
    return counts, frames
