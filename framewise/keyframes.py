"""Small JPEG keyframes that outlive the upload, for the results viewer.

Decode writes one keyframe per half second of video (``thumbs/<job>/<slot>.jpg``, slot =
floor(t * 2)), sampled by its own :data:`PROFILE` from the full decoded frame so that its
size does not depend on which stages a job asked for, and one per image of a batch. When a
video job ends, the aggregator keeps only the keyframe nearest each raw scene's middle and
each section's ``thumbnail_timestamp``. They are deleted with the job's other media at
retention.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from framewise import keys
from framewise.blobstore import BlobStore
from framewise.media import Profile
from schemas.api import VideoResult

SLOTS_PER_SECOND = 2
MAX_SIDE = 240
PROFILE = Profile("keyframes", SLOTS_PER_SECOND, MAX_SIDE, batch_frames=4 * SLOTS_PER_SECOND)


def slot_of(t: float) -> int:
    return int(np.floor(t * SLOTS_PER_SECOND + 1e-6))


def encode(rgb: np.ndarray) -> bytes:
    """A JPEG of at most ``MAX_SIDE`` px on its long side."""
    h, w = rgb.shape[:2]
    scale = min(1.0, MAX_SIDE / max(h, w))
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def write_video_keyframes(
    blobs: BlobStore, job_id: str, frames: Sequence[np.ndarray], times: list[float]
) -> None:
    """The keyframes of a :data:`PROFILE` batch: one per half-second slot."""
    for frame, t in zip(frames, times, strict=True):
        blobs.put_bytes(keys.video_keyframe(job_id, slot_of(t)), encode(frame))


def stored_slots(blobs: BlobStore, job_id: str) -> list[int]:
    folder = blobs.path(keys.keyframes_prefix(job_id))
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob("*.jpg") if p.stem.isdigit())


def nearest(slots: list[int], t: float) -> int | None:
    if not slots:
        return None
    target = t * SLOTS_PER_SECOND
    return min(slots, key=lambda s: (abs(s + 0.5 - target), s))


def wanted_times(result: VideoResult) -> list[float]:
    """The middle of every raw scene and every section's thumbnail timestamp."""
    times = [(s.start_seconds + s.end_seconds) / 2 for s in result.raw_scenes]
    times += [s.thumbnail_timestamp for s in result.sections]
    return times


def prune_video_keyframes(blobs: BlobStore, job_id: str, times: list[float]) -> list[int]:
    """Keep the keyframes nearest ``times`` (:func:`wanted_times`), delete the rest; the kept
    slots."""
    slots = stored_slots(blobs, job_id)
    keep = {nearest(slots, t) for t in times} - {None}
    for slot in slots:
        if slot not in keep:
            blobs.path(keys.video_keyframe(job_id, slot)).unlink(missing_ok=True)
    return sorted(keep)
