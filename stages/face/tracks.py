"""Face tracks: the same face found again in the next sampled frame of a video keeps the
embedding and the age and gender read from it earlier, so the embedding network (about
75 ms per face with dlib's ResNet) runs once per face and track instead of once per face and
frame.

A face continues a track when it is at most a face's width from where the track was last
seen, less than ``MAX_GAP_SECONDS`` before, of a similar size, and its aligned chip looks the
same (normalised correlation of small grey copies at least ``MIN_SIMILARITY``). On the moving
shots of ``t1.jpg`` the same face between samples 0.5 s apart correlates at 0.73 or more;
different faces at 0.49 or less. A track is embedded again after ``refresh_seconds`` or when
its face has grown to ``GROWTH`` times the area it was embedded at (a closer, better view).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

SIGNATURE_SIDE = 32
MIN_SIMILARITY = 0.6
MAX_GAP_SECONDS = 1.5
MAX_SHIFT = 1.0  # face widths between the track's last box and the new one
MAX_AREA_RATIO = 2.25
GROWTH = 2.0


def signature(chip: np.ndarray) -> np.ndarray:
    """A small zero-mean, unit-norm grey copy of an aligned face chip."""
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    side = (SIGNATURE_SIDE, SIGNATURE_SIDE)
    small = cv2.resize(grey, side, interpolation=cv2.INTER_AREA).astype(np.float32)
    small -= small.mean()
    return small / max(float(np.linalg.norm(small)), 1e-6)


@dataclass
class Track:
    """Where a face was last seen, and when and how large it was last embedded. What was
    read then is ``known`` (the payload entry's identity fields) or, while the batch that
    reads it is running, ``pending`` (the index of that face in the batch)."""

    box: np.ndarray  # x0, y0, x1, y1 in the frame's pixels
    signature: np.ndarray
    t: float
    embedded_t: float = 0.0
    embedded_area: float = 0.0
    known: dict[str, Any] | None = None
    pending: int | None = None

    def needs_embedding(self, refresh_seconds: float) -> bool:
        return (
            (self.known is None and self.pending is None)
            or self.t - self.embedded_t >= refresh_seconds
            or _area(self.box) >= GROWTH * self.embedded_area
        )

    def embed_as(self, pending: int) -> None:
        """The face now on the track (``pending`` in the batch) is the one to embed."""
        self.embedded_t, self.embedded_area = self.t, _area(self.box)
        self.known, self.pending = None, pending


class FaceTracks:
    """One job's recent tracks."""

    def __init__(self) -> None:
        self.tracks: list[Track] = []

    def drop_unsettled(self) -> None:
        """Forget tracks whose face was never read (their batch failed before ``settle``)."""
        self.tracks = [track for track in self.tracks if track.pending is None]

    def follow(
        self, boxes: list[np.ndarray], signatures: list[np.ndarray], t: float
    ) -> list[Track]:
        """The track of each face of one frame at ``t``: the one it continues (each track
        continued by one face at most, the most similar first), or a new one. Tracks last seen
        more than ``MAX_GAP_SECONDS`` before are dropped."""
        live = [track for track in self.tracks if 0 <= t - track.t <= MAX_GAP_SECONDS]
        pairs = sorted(
            (
                (float((sig * track.signature).sum()), i, j)
                for i, (box, sig) in enumerate(zip(boxes, signatures, strict=True))
                for j, track in enumerate(live)
                if _near(box, track.box)
            ),
            reverse=True,
        )
        chosen: dict[int, Track] = {}
        taken: set[int] = set()
        for similarity, i, j in pairs:
            if similarity >= MIN_SIMILARITY and i not in chosen and j not in taken:
                chosen[i] = live[j]
                taken.add(j)
        out = []
        for i, (box, sig) in enumerate(zip(boxes, signatures, strict=True)):
            track = chosen.get(i)
            if track is None:
                track = Track(box, sig, t)
                live.append(track)
            track.box, track.signature, track.t = box, sig, t
            out.append(track)
        self.tracks = live
        return out

    def settle(self, entries: list[dict[str, Any]]) -> None:
        """After the batch: pending tracks take what was read from their face."""
        for track in self.tracks:
            if track.pending is not None:
                track.known, track.pending = entries[track.pending], None


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def _near(box: np.ndarray, other: np.ndarray) -> bool:
    width = max(box[2] - box[0], other[2] - other[0])
    shift = float(np.hypot(*((box[:2] + box[2:]) / 2 - (other[:2] + other[2:]) / 2)))
    ratio = _area(box) / max(_area(other), 1e-6)
    return shift <= MAX_SHIFT * width and 1 / MAX_AREA_RATIO <= ratio <= MAX_AREA_RATIO
