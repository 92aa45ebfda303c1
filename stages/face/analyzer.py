"""The face stage's per-batch work, apart from its Faust agents and its finalisers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from framewise import keys
from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.picture_change import RecentJobs, changed_rows, thumbnail
from schemas.messages import FrameBatch
from stages.face import packs
from stages.face.allowlist import AllowlistIndex
from stages.face.embedding import encode_embedding
from stages.face.settings import FaceSettings


class FaceAnalyzer:
    """Detect, align, embed (batched), gender/age (batched), match the allowlist, with the
    configured face pack; the aligned crop of each face is kept in the blob store for the
    person's thumbnail. A video frame whose picture did not change since the frame its job's
    faces were last found on (``framewise/picture_change.py``), less than
    ``FRAMEWISE_FACE_REUSE_SECONDS`` before, repeats those faces without running a model.
    Detectors waver on borderline faces even in a still picture, so it looks again after that."""

    def __init__(self, settings: Settings, allowlist: AllowlistIndex | None = None) -> None:
        self.settings = settings
        self.min_size = settings.group(FaceSettings).min_size
        self.reuse_seconds = settings.group(FaceSettings).reuse_seconds
        self.memory: RecentJobs[Seen] = RecentJobs()
        self.frames_seen = 0
        self.frames_analysed = 0
        self.pack = packs.make_pack(settings).load()
        self.blobs = BlobStore(settings.data_dir)
        self.allowlist = allowlist or AllowlistIndex(
            self.pack.name, self.pack.embedding_size, packs.thresholds(settings).allowlist
        )

    def analyze(self, frames: np.ndarray, batch: FrameBatch) -> dict[str, Any]:
        own = frames[batch.context_frames :]
        times = batch.timestamps[batch.context_frames :]
        reuse = self.reuse_seconds > 0 and batch.media_type == "video"
        reference = self.memory.get(batch.job_id) if reuse else None
        repeats: dict[int, int | list[dict]] = {}  # frame -> earlier frame, or faces, it repeats
        found = []  # (frame index, face index in the frame, aligned face, attributes)
        for i, rgb in enumerate(own):
            self.frames_seen += 1
            if reuse:
                thumb = thumbnail(rgb)
                recent = (
                    reference is not None
                    and reference.shape == rgb.shape
                    and 0 <= times[i] - reference.t < self.reuse_seconds
                )
                if recent and not changed_rows(reference.thumbnail, thumb).any():
                    repeats[i] = reference.faces if reference.frame is None else reference.frame
                    continue
                reference = Seen(thumb, rgb.shape, times[i], frame=i)
            self.frames_analysed += 1
            detections = [
                d
                for d in self.pack.detect(rgb)
                if min(d.bbox[2] - d.bbox[0], d.bbox[3] - d.bbox[1]) >= self.min_size
            ]
            faces = self.pack.align(rgb, detections)
            attributes = self.pack.attributes(rgb, faces)
            found += [(i, k, f, a) for k, (f, a) in enumerate(zip(faces, attributes, strict=True))]
        embeddings = self.pack.embed([face for _, _, face, _ in found])
        out: dict[int, list] = {i: [] for i in range(len(own))}
        for (i, k, face, (p_male, age)), embedding in zip(found, embeddings, strict=True):
            h, w = own[i].shape[:2]
            x0, y0, x1, y1 = np.clip(face.detection.bbox, 0, [w, h, w, h])
            key = keys.face_crop(batch.job_id, batch.segment_index, batch.batch_index, i, k)
            jpeg = cv2.imencode(".jpg", face.chip[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
            self.blobs.put_bytes(key, jpeg.tobytes())
            out[i].append(
                {
                    "box": [round(float(v), 5) for v in (x0 / w, y0 / h, x1 / w, y1 / h)],
                    "area": round(float((x1 - x0) * (y1 - y0) / (w * h)), 6),
                    "score": round(face.detection.score, 4),
                    "embedding": encode_embedding(embedding),
                    "pack": self.pack.name,
                    "p_male": p_male,
                    "age": age,
                    "thumbnail": key,
                    "allowlisted": self.allowlist.match(embedding, batch.owner) is not None,
                }
            )
        for i, source in repeats.items():
            out[i] = [dict(f) for f in (out[source] if isinstance(source, int) else source)]
        if reference is not None:
            faces = out[reference.frame] if reference.frame is not None else reference.faces
            self.memory.put(
                batch.job_id, Seen(reference.thumbnail, reference.shape, reference.t, faces)
            )
        return {"frames": [{"t": times[i], "faces": out[i]} for i in range(len(own))]}


@dataclass
class Seen:
    """The frame a job's faces were last found on: its thumbnail and shape, and its faces
    (payload entries), or its index in the batch being analysed until they are known."""

    thumbnail: np.ndarray
    shape: tuple[int, ...]
    t: float  # its timestamp: faces are repeated for at most ``reuse_seconds`` after it
    faces: list[dict] = field(default_factory=list)
    frame: int | None = None
