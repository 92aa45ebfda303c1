"""Every id, blob-store key and Kafka key, built in one place.

Job ids say their media type (``video_…``, ``image_batch_…``) and carry 128 random bits.
Blob keys group a job's files under one prefix per kind, so a job's media goes with one
delete. Kafka keys put all events of a job on one partition (``job``), and spread a job's
segments and batches over partitions (``job:segment``, ``job:segment:batch``).
"""

from __future__ import annotations

import secrets
from typing import Literal

MediaType = Literal["video", "image"]
PREFIXES: dict[MediaType, str] = {"video": "video", "image": "image_batch"}


def new_job_id(media_type: MediaType) -> str:
    return f"{PREFIXES[media_type]}_{secrets.token_urlsafe(16)}"  # 128 random bits, URL-safe


def new_identity_id() -> str:
    return f"identity_{secrets.token_urlsafe(16)}"


def media_type_of(job_id: str) -> MediaType:
    return "video" if job_id.startswith(f"{PREFIXES['video']}_") else "image"


# --- blob store ---------------------------------------------------------------------------


def uploaded_video(job_id: str) -> str:
    return f"uploads/{job_id}/video"


def uploaded_image(job_id: str, index: int) -> str:
    return f"uploads/{job_id}/{index:05d}"


def frame_batch(job_id: str, profile: str, segment: int, batch: int) -> str:
    return f"frames/{job_id}/{profile}/{segment:05d}-{batch:05d}.frames"


def face_crop(job_id: str, segment: int, batch: int, frame: int, face: int) -> str:
    return f"frames/{job_id}/faces/{segment:05d}-{batch:05d}-{frame:03d}-{face:03d}.jpg"


def enrolment_image(identity_id: str, index: int) -> str:
    return f"allowlist/{identity_id}/{index:03d}"


def enrolment_prefix(identity_id: str) -> str:
    return f"allowlist/{identity_id}"


def keyframes_prefix(job_id: str) -> str:
    """The results viewer's keyframes: kept until retention, unlike the frames."""
    return f"thumbs/{job_id}"


def video_keyframe(job_id: str, slot: int) -> str:
    return f"{keyframes_prefix(job_id)}/{slot:08d}.jpg"


def image_thumbnail(job_id: str, index: int) -> str:
    return f"{keyframes_prefix(job_id)}/item-{index:05d}.jpg"


def final_body(job_id: str) -> str:
    """A job's terminal body as published, kept for re-publishing until retention (in a file,
    so neither the aggregator's memory nor its changelog holds every body)."""
    return f"results/{job_id}.json"


def webhook_attempts(delivery_id: str) -> str:
    """How many attempts a webhook delivery has made (so a restart continues the count)."""
    return f"webhooks/{delivery_id}.attempts"


def transient_prefixes(job_id: str) -> tuple[str, str]:
    """The job's upload and frames, deleted as soon as the job ends."""
    return f"uploads/{job_id}", f"frames/{job_id}"


# --- Kafka --------------------------------------------------------------------------------

OWNER_HEADER = "framewise-owner"  # on a job's status records: the API key that made the job


def job_key(job_id: str) -> bytes:
    return job_id.encode()


def segment_key(job_id: str, segment: int) -> bytes:
    return f"{job_id}:{segment}".encode()


def batch_key(job_id: str, segment: int, batch: int) -> bytes:
    return f"{job_id}:{segment}:{batch}".encode()
