"""Small JPEG keyframes that outlive the upload, for the results viewer.

Decode writes one keyframe per half second of video (``thumbs/<job>/<slot>.jpg``, slot =
floor(t * 2)) and one per image of a batch; when a video job ends, the aggregator keeps only
the keyframe nearest each raw scene's middle and each section's ``thumbnail_timestamp``. They
are deleted with the job's other media at retention.
"""

from __future__ import annotations

import cv2
import numpy as np

from framewise import keys
from framewise.blobstore import BlobStore

SLOTS_PER_SECOND = 2
MAX_SIDE = 240


def slot_of(t: float) -> int:
    return int(np.floor(t * SLOTS_PER_SECOND + 1e-6))


def encode(rgb: np.ndarray) -> bytes:
    """A JPEG of at most ``MAX_SIDE`` px on its long side."""
    h, w = rgb.shape[:2]
    scale = min(1.0, MAX_SIDE / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), cv2.INTER_AREA)
    return cv2.imencode(".jpg", small[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def write_video_keyframes(
    blobs: BlobStore, job_id: str, frames: np.ndarray, times: list[float], written: set[int]
) -> None:
    """Keyframes for the half-second slots of ``times`` not yet in ``written``."""
    for frame, t in zip(frames, times, strict=True):
        slot = slot_of(t)
        if slot not in written:
            blobs.put_bytes(keys.video_keyframe(job_id, slot), encode(frame))
            written.add(slot)


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


def wanted_times(result: dict) -> list[float]:
    """The middle of every raw scene and every section's thumbnail timestamp."""
    times = [(s["start_seconds"] + s["end_seconds"]) / 2 for s in result.get("raw_scenes", [])]
    times += [s["thumbnail_timestamp"] for s in result.get("sections", [])]
    return times


def prune_video_keyframes(blobs: BlobStore, job_id: str, result: dict) -> list[int]:
    """Keep the keyframes nearest :func:`wanted_times`, delete the rest; the kept slots."""
    slots = stored_slots(blobs, job_id)
    keep = {nearest(slots, t) for t in wanted_times(result)} - {None}
    for slot in slots:
        if slot not in keep:
            blobs.path(keys.video_keyframe(job_id, slot)).unlink(missing_ok=True)
    return sorted(keep)
