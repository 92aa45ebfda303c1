"""Shot detection, as pure numpy: per-frame features from a batch, then shots from all features.

Split in two so that the heavy part (pixel work) runs per batch on any scene worker, while the
decision, which needs the whole timeline, runs once on compact per-frame numbers:

1. :func:`frame_features` (per batch, context frames first) measures for each frame
   ``activity`` (mean absolute HSV difference to the previous frame, 0..1), ``luma`` (mean
   brightness 0..255), ``flash_gap`` (HSV difference to the frame ``FLASH_SPAN`` back) and
   ``drift`` (HSV-histogram distance to the frame about half a second back).
2. :class:`ShotDetector` finds boundaries of three kinds and merges those that are too close:

   * **hard cut**: ``activity`` above an absolute floor *and* several times the activity of
     its neighbours (so camera motion, which raises every neighbour, does not count), unless
     the picture ``FLASH_SPAN`` frames apart is the same on both sides of the spike (a flash);
   * **fade to/from black**: where a run of black frames (``luma`` under a level) starts or ends;
   * **dissolve**: a sustained rise of ``drift`` (colour content changing over half a second)
     that no cut or fade explains; the boundary is the middle of the rise. A pan keeps the
     colour histogram, so it does not trigger this.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FLASH_SPAN = 4  # frames; a flash shorter than this is not a cut
HIST_BINS = (16, 4, 4)


def drift_span(rate: float) -> int:
    """Frames over which gradual transitions are measured (about half a second)."""
    return max(2, round(0.5 * rate))


@dataclass
class SceneFeatures:
    """Per analysed frame, in time order; ``nan`` where the frame it compares to is absent."""

    frame_indices: list[int]
    timestamps: list[float]
    activity: list[float]
    luma: list[float]
    flash_gap: list[float]
    drift: list[float]

    def to_payload(self) -> dict:
        """JSON-ready: ``nan`` becomes ``None``."""
        return {k: [None if v != v else v for v in vs] for k, vs in self.__dict__.items()}

    @classmethod
    def from_payloads(cls, payloads: list[dict]) -> SceneFeatures:
        merged: dict[str, list] = {k: [] for k in cls.__dataclass_fields__}
        for payload in payloads:
            for key in merged:
                merged[key].extend(float("nan") if v is None else v for v in payload[key])
        return cls(**merged)


def _hsv(frames: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2HSV) for f in frames])


def _histogram(hsv: np.ndarray) -> np.ndarray:
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(HIST_BINS), [0, 180, 0, 256, 0, 256])
    hist = hist.ravel()
    return hist / max(hist.sum(), 1.0)


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(cv2.absdiff(a, b).mean() / 255.0)


def frame_features(
    frames: np.ndarray,
    context_frames: int,
    frame_indices: list[int],
    timestamps: list[float],
    rate: float,
) -> SceneFeatures:
    """Features of ``frames[context_frames:]``; the leading context frames are only compared to."""
    hsv = _hsv(frames)
    hists = [_histogram(h) for h in hsv]
    span = drift_span(rate)
    nan = float("nan")
    out = SceneFeatures([], [], [], [], [], [])
    for i in range(context_frames, len(frames)):
        out.frame_indices.append(frame_indices[i])
        out.timestamps.append(timestamps[i])
        out.activity.append(_mean_abs_diff(hsv[i], hsv[i - 1]) if i >= 1 else nan)
        out.luma.append(float(frames[i].mean()))
        out.flash_gap.append(
            _mean_abs_diff(hsv[i], hsv[i - FLASH_SPAN]) if i >= FLASH_SPAN else nan
        )
        out.drift.append(
            float(0.5 * np.abs(hists[i] - hists[i - span]).sum()) if i >= span else nan
        )
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of every run of True in ``mask``."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


@dataclass(frozen=True)
class Boundary:
    frame: int  # position in the feature arrays
    kind: str  # "cut", "fade", "dissolve"


_PRIORITY = {"cut": 0, "fade": 1, "dissolve": 2}


@dataclass
class ShotDetector:
    """Turns a video's :class:`SceneFeatures` into shot boundaries. Thresholds in ``docs/``."""

    cut_min_activity: float = 0.06
    cut_neighbour_ratio: float = 3.0
    cut_window: int = 2
    flash_return_ratio: float = 0.5
    black_level: float = 12.0
    min_black_seconds: float = 0.1
    dissolve_drift: float = 0.3
    dissolve_peak: float = 0.45
    min_scene_seconds: float = 0.3

    def boundaries(self, f: SceneFeatures, rate: float) -> list[Boundary]:
        activity = np.asarray(f.activity, dtype=float)
        found = self._cuts(activity, np.asarray(f.flash_gap, dtype=float))
        found += self._fades(np.asarray(f.luma, dtype=float), rate)
        found += self._dissolves(np.asarray(f.drift, dtype=float), rate, found)
        return self._merge(found, max(1, round(self.min_scene_seconds * rate)))

    def _cuts(self, activity: np.ndarray, flash_gap: np.ndarray) -> list[Boundary]:
        cuts = []
        n = len(activity)
        for i in range(1, n):
            a = activity[i]
            if not a >= self.cut_min_activity:
                continue
            lo, hi = max(0, i - self.cut_window), min(n, i + self.cut_window + 1)
            neighbours = np.concatenate([activity[lo:i], activity[i + 1 : hi]])
            neighbours = neighbours[~np.isnan(neighbours)]
            if neighbours.size and a < self.cut_neighbour_ratio * neighbours.mean():
                continue
            # A flash: the picture FLASH_SPAN frames after the spike is back to the one before
            # it (the flash's start), or this frame is back to one FLASH_SPAN before (its end).
            after = i - 1 + FLASH_SPAN  # flash_gap[after] compares frame i-1+SPAN with i-1
            returns_later = after < n and flash_gap[after] < self.flash_return_ratio * a
            returned_now = flash_gap[i] < self.flash_return_ratio * a
            if returns_later or returned_now:
                continue
            cuts.append(Boundary(i, "cut"))
        return cuts

    def _fades(self, luma: np.ndarray, rate: float) -> list[Boundary]:
        min_run = max(2, round(self.min_black_seconds * rate))
        fades = []
        for i, j in _runs(luma < self.black_level):
            if j - i >= min_run:
                if i > 0:
                    fades.append(Boundary(i, "fade"))
                if j < len(luma):
                    fades.append(Boundary(j, "fade"))
        return fades

    def _dissolves(
        self, drift: np.ndarray, rate: float, explained: list[Boundary]
    ) -> list[Boundary]:
        span = drift_span(rate)
        dissolves = []
        for i, j in _runs(np.nan_to_num(drift, nan=0.0) >= self.dissolve_drift):
            run = drift[i:j]
            explained_here = any(i - 2 <= b.frame <= j + 1 for b in explained)
            if j - i >= span // 2 and np.nanmax(run) >= self.dissolve_peak and not explained_here:
                peak = i + int(np.nanargmax(run))
                dissolves.append(Boundary(max(i, peak - span // 2), "dissolve"))
        return dissolves

    @staticmethod
    def _merge(found: list[Boundary], min_gap: int) -> list[Boundary]:
        kept: list[Boundary] = []
        for b in sorted(found, key=lambda b: (_PRIORITY[b.kind], b.frame)):
            if b.frame > 0 and all(abs(b.frame - k.frame) >= min_gap for k in kept):
                kept.append(b)
        return sorted(kept, key=lambda b: b.frame)


def scenes_from_boundaries(
    timestamps: list[float], boundaries: list[Boundary], duration: float
) -> list[tuple[float, float]]:
    """Contiguous ``(start, end)`` shots covering ``[0, duration]``."""
    starts = [0.0] + [timestamps[b.frame] for b in boundaries]
    end = max(duration, timestamps[-1] if timestamps else 0.0)
    return [(s, e) for s, e in zip(starts, [*starts[1:], end], strict=True) if e > s]
