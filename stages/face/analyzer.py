"""The face stage's per-batch work, apart from its Faust agents and its finalisers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from framewise import keys
from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.picture_change import RecentSequences, picture_changed, sequence_of, thumbnail
from schemas.messages import FrameBatch
from stages.face import packs
from stages.face.allowlist import AllowlistIndex
from stages.face.embedding import encode_embedding
from stages.face.pack import AlignedFace, Detection
from stages.face.settings import FaceSettings
from stages.face.tracks import FaceTracks, signature

IDENTITY = ("embedding", "p_male", "age", "allowlisted")  # what a tracked face repeats


@dataclass
class FacePlan:
    """How a batch's faces are read: what reuse and tracking decided, before any embedding."""

    # frame -> the earlier frame of this batch, or the faces of an earlier batch, it repeats
    repeats: dict[int, int | list[dict]] = field(default_factory=dict)
    # faces to embed: (frame, face index in the frame, face, (p_male, age))
    found: list[tuple[int, int, AlignedFace, tuple[float, float]]] = field(default_factory=list)
    # faces on a track: (frame, face index, face, index into ``found`` or the track's identity)
    followed: list[tuple[int, int, AlignedFace, int | dict]] = field(default_factory=list)


class FaceAnalyzer:
    """Detect, align, embed (batched), gender/age (batched), match the allowlist, with the
    configured face pack; the aligned crop of each face is kept in the blob store for the
    person's thumbnail. Two savings on videos, each per job:

    - a frame whose picture did not change since the frame its job's faces were last found on
      (``framewise/picture_change.py``), less than ``FRAMEWISE_FACE_REUSE_SECONDS`` before,
      repeats those faces without running a model (detectors waver on borderline faces even
      in a still picture, so it looks again after that);
    - a face that continues a track (``stages/face/tracks.py``) repeats the embedding, age,
      gender and allowlist match read from the track, embedded again after
      ``FRAMEWISE_FACE_TRACK_SECONDS``."""

    def __init__(self, settings: Settings, allowlist: AllowlistIndex | None = None) -> None:
        self.settings = settings
        face = settings.group(FaceSettings)
        self.min_size = face.min_size
        self.reuse_seconds = face.reuse_seconds
        self.track_seconds = face.track_seconds
        self.memory: RecentSequences[Seen] = RecentSequences()
        self.tracks: RecentSequences[FaceTracks] = RecentSequences()
        self.frames_seen = 0
        self.frames_analysed = 0
        self.faces_embedded = 0
        self.pack = packs.make_pack(settings).load()
        self.blobs = BlobStore(settings.data_dir)
        self.allowlist = allowlist or AllowlistIndex(
            self.pack.name, self.pack.embedding_size, packs.thresholds(settings).allowlist
        )

    def analyze(self, frames: np.ndarray, batch: FrameBatch) -> dict[str, Any]:
        own = frames[batch.context_frames :]
        times = batch.timestamps[batch.context_frames :]
        video = batch.media_type == "video"
        reuse = self.reuse_seconds > 0 and video
        tracks = None
        if video and self.track_seconds > 0:
            tracks = self.tracks.get(sequence_of(batch)) or FaceTracks()
            tracks.drop_unsettled()
        reference = self.memory.get(sequence_of(batch)) if reuse else None
        plan, reference = self._plan(own, times, reuse, reference, tracks)
        listed, entries = self._describe(batch, own, plan)
        if reference is not None:
            faces = listed[reference.frame] if reference.frame is not None else reference.faces
            self.memory.put(
                sequence_of(batch), Seen(reference.thumbnail, reference.shape, reference.t, faces)
            )
        if tracks is not None:
            tracks.settle(entries)
            self.tracks.put(sequence_of(batch), tracks)
        return {"frames": [{"t": times[i], "faces": listed[i]} for i in range(len(own))]}

    def _plan(
        self,
        own: np.ndarray,
        times: list[float],
        reuse: bool,
        reference: Seen | None,
        tracks: FaceTracks | None,
    ) -> tuple[FacePlan, Seen | None]:
        """Detect and align where the picture changed; of those faces, the ones to embed and
        the ones that continue a track. Also the frame later batches compare with."""
        plan = FacePlan()
        for i, rgb in enumerate(own):
            self.frames_seen += 1
            if reuse:
                thumb = thumbnail(rgb)
                recent = (
                    reference is not None
                    and reference.shape == rgb.shape
                    and 0 <= times[i] - reference.t < self.reuse_seconds
                )
                if recent and not picture_changed(reference.thumbnail, thumb):
                    earlier = reference.faces if reference.frame is None else reference.frame
                    plan.repeats[i] = earlier
                    continue
                reference = Seen(thumb, rgb.shape, times[i], frame=i)
            self.frames_analysed += 1
            faces = self.pack.align(rgb, self._detect(rgb))
            fresh = list(range(len(faces)))
            if tracks is not None:
                on = tracks.follow(
                    [f.detection.bbox for f in faces], [signature(f.chip) for f in faces], times[i]
                )
                fresh = [
                    k for k, track in enumerate(on) if track.needs_embedding(self.track_seconds)
                ]
                for k in fresh:
                    on[k].embed_as(len(plan.found) + fresh.index(k))
                plan.followed += [
                    (i, k, faces[k], track.known if track.pending is None else track.pending)
                    for k, track in enumerate(on)
                    if k not in fresh
                ]
            attributes = self.pack.attributes(rgb, [faces[k] for k in fresh])
            plan.found += [(i, k, faces[k], a) for k, a in zip(fresh, attributes, strict=True)]
        return plan, reference

    def _describe(
        self, batch: FrameBatch, own: np.ndarray, plan: FacePlan
    ) -> tuple[dict[int, list[dict]], list[dict]]:
        """Each frame's face entries (embedded in one batch, repeated from a track or from an
        unchanged frame), and the freshly embedded entries in ``plan.found`` order."""
        embeddings = self.pack.embed([face for _, _, face, _ in plan.found])
        self.faces_embedded += len(plan.found)
        out: dict[int, dict[int, dict]] = {i: {} for i in range(len(own))}
        entries = []
        for (i, k, face, (p_male, age)), embedding in zip(plan.found, embeddings, strict=True):
            entry = self._entry(batch, own[i].shape, i, k, face) | {
                "embedding": encode_embedding(embedding),
                "p_male": p_male,
                "age": age,
                "allowlisted": self.allowlist.match(embedding, batch.owner) is not None,
            }
            entries.append(entry)
            out[i][k] = entry
        for i, k, face, source in plan.followed:
            identity = entries[source] if isinstance(source, int) else source
            out[i][k] = self._entry(batch, own[i].shape, i, k, face) | {
                name: identity[name] for name in IDENTITY
            }
        listed = {i: [faces[k] for k in sorted(faces)] for i, faces in out.items()}
        for i, source in plan.repeats.items():
            listed[i] = [dict(f) for f in (listed[source] if isinstance(source, int) else source)]
        return listed, entries

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        return [
            d
            for d in self.pack.detect(rgb)
            if min(d.bbox[2] - d.bbox[0], d.bbox[3] - d.bbox[1]) >= self.min_size
        ]

    def _entry(
        self, batch: FrameBatch, shape: tuple[int, ...], i: int, k: int, face: AlignedFace
    ) -> dict[str, Any]:
        """A face's place in its frame, with its aligned crop stored for the thumbnail."""
        h, w = shape[:2]
        x0, y0, x1, y1 = np.clip(face.detection.bbox, 0, [w, h, w, h])
        key = keys.face_crop(batch.job_id, batch.segment_index, batch.batch_index, i, k)
        jpeg = cv2.imencode(".jpg", face.chip[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
        self.blobs.put_bytes(key, jpeg.tobytes())
        return {
            "box": [round(float(v), 5) for v in (x0 / w, y0 / h, x1 / w, y1 / h)],
            "area": round(float((x1 - x0) * (y1 - y0) / (w * h)), 6),
            "score": round(face.detection.score, 4),
            "pack": self.pack.name,
            "thumbnail": key,
        }


@dataclass
class Seen:
    """The frame a job's faces were last found on: its thumbnail and shape, and its faces
    (payload entries), or its index in the batch being analysed until they are known."""

    thumbnail: np.ndarray
    shape: tuple[int, ...]
    t: float  # its timestamp: faces are repeated for at most ``reuse_seconds`` after it
    faces: list[dict] = field(default_factory=list)
    frame: int | None = None
