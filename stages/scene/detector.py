"""Shot detection, as pure numpy: per-frame features from a batch, then shots from all features.

Split in two so that the heavy part (pixel work) runs per batch on any scene worker, while the
decision, which needs the whole timeline, runs once on compact per-frame numbers:

1. :func:`frame_features` (per batch, context frames first) measures for each frame
   ``activity`` (mean absolute HSV difference to the previous frame, 0..1), ``luma`` (mean
   brightness 0..255), ``flash_gap`` (HSV difference to the frame ``FLASH_SPAN`` back),
   ``drift`` (HSV-histogram distance to the frame about half a second back), ``flat`` (share
   of the picture within a few levels of its median colour: 1 for a flat colour), ``sharpness``
   (mean absolute Laplacian, which motion blur lowers) and ``spread`` (share of pixels that
   changed a lot since the previous frame: a moving edge in a wipe).
2. :class:`ShotDetector` finds boundaries of four kinds and merges those that are too close:

   * **cut**: ``activity`` above an absolute floor *and* several times the median activity
     of its neighbours (camera motion raises every neighbour), unless it starts or ends a
     flash (1-3 frames brighter than either side, or a picture that comes back);
   * **fade**: where a run of flat frames (black, white or any colour) starts or ends (a
     ``cut`` where the picture jumped to or from the flat colour in one frame);
   * **dissolve** and **wipe**: a sustained rise of ``drift`` that no cut or fade explains,
     unless it is a whip pan or a fast zoom (much more motion than either side *and* a
     blurred picture); the boundary is the middle of the rise, and the kind is ``wipe``
     where the change ran along an edge (``spread`` above its surroundings).

Every boundary keeps its kind and a confidence in 0..1 (0.5 at the threshold that admitted
it), for sections and thumbnails; the public result has only the shots.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

FLASH_SPAN = 4  # frames; a flash shorter than this is not a cut
HIST_BINS = (16, 4, 4)
FLAT_TOLERANCE = 6  # levels from the median colour that still count as the flat colour
SPREAD_LEVEL = 40  # grey levels of change that make a pixel count in ``spread``

Channels = tuple[np.ndarray, np.ndarray, np.ndarray]  # a frame's flat hue, saturation, value


def drift_span(rate: float) -> int:
    """Frames over which gradual transitions are measured (about half a second)."""
    return max(2, round(0.5 * rate))


@dataclass
class SceneFeatures:
    """Per analysed frame, in time order; ``nan`` where the frame it compares to is absent.
    The measures are ``array("d")``: list-like, but 8 bytes a value where a list of floats
    takes 32 (a video's features are held whole when its shots are found)."""

    frame_indices: list[int]
    timestamps: array[float]
    activity: array[float]
    luma: array[float]
    flash_gap: array[float]
    drift: array[float]
    flat: array[float]
    sharpness: array[float]
    spread: array[float]

    @classmethod
    def empty(cls) -> SceneFeatures:
        return cls([], *(array("d") for _ in range(len(cls.__dataclass_fields__) - 1)))

    def to_payload(self) -> dict:
        """JSON-ready: ``nan`` becomes ``None``."""
        return {k: [None if v != v else v for v in vs] for k, vs in self.__dict__.items()}

    @classmethod
    def from_payloads(cls, payloads: Iterable[dict]) -> SceneFeatures:
        merged = cls.empty()
        for payload in payloads:
            for key, values in merged.__dict__.items():
                values.extend(float("nan") if v is None else v for v in payload[key])
        return merged

    def array(self, name: str) -> np.ndarray:
        return np.asarray(getattr(self, name), dtype=float)


def _histogram(hsv: np.ndarray) -> np.ndarray:
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(HIST_BINS), [0, 180, 0, 256, 0, 256])
    hist = hist.ravel()
    return hist / max(hist.sum(), 1.0)


def _mean_abs_diff(a: Channels, b: Channels) -> float:
    """Mean HSV change, 0..1. Hue counts as much as the pixels' colourfulness (and saturation
    as much as their brightness): in dark or grey pixels both are codec noise, which flickers
    at every key frame of dark footage. Products are summed as float32 dot products of the
    flat channels (about 4x faster than the same sums over HSV images)."""
    (a_hue, a_sat, a_val), (b_hue, b_sat, b_val) = a, b
    hue_diff = cv2.absdiff(a_hue, b_hue)
    hue = np.minimum(hue_diff, 180 - hue_diff).astype(np.float32)  # around the hue circle
    value = cv2.min(a_val, b_val)
    colour = cv2.min(cv2.min(a_sat, b_sat), value).astype(np.float32)
    saturation = cv2.absdiff(a_sat, b_sat).astype(np.float32)
    total = (
        float(np.dot(hue, colour)) / 90.0  # hue scaled to 0..255, colour to 0..1
        + float(np.dot(saturation, value.astype(np.float32))) / 255.0
        + cv2.sumElems(cv2.absdiff(a_val, b_val))[0]
    )
    return total / a_hue.size / (3 * 255.0)


def _channels(hsv: np.ndarray) -> Channels:
    hue, saturation, value = (channel.ravel() for channel in cv2.split(hsv))
    return hue, saturation, value


def _spread(a: np.ndarray, b: np.ndarray) -> float:
    changed = cv2.compare(cv2.absdiff(a, b), SPREAD_LEVEL, cv2.CMP_GT)
    return cv2.countNonZero(changed) / changed.size


def _flatness(frame: np.ndarray) -> float:
    """Share of a 64x36 thumbnail within ``FLAT_TOLERANCE`` of its median colour (the median
    from each channel's histogram, as ``np.median`` gives it, truncated to a level)."""
    thumb = cv2.resize(frame, (64, 36), interpolation=cv2.INTER_AREA)
    pixels = thumb.reshape(-1, 3)
    n = len(pixels)
    median = np.empty(3, np.int16)
    for c in range(3):
        cumulative = np.cumsum(np.bincount(pixels[:, c], minlength=256))
        low, high = np.searchsorted(cumulative, [(n - 1) // 2 + 1, n // 2 + 1])
        median[c] = (int(low) + int(high)) // 2
    inside = cv2.inRange(
        thumb,
        np.clip(median - FLAT_TOLERANCE, 0, 255).astype(np.uint8),
        np.clip(median + FLAT_TOLERANCE, 0, 255).astype(np.uint8),
    )
    return cv2.countNonZero(inside) / n


def frame_features(
    frames: np.ndarray,
    context_frames: int,
    frame_indices: list[int],
    timestamps: list[float],
    rate: float,
) -> SceneFeatures:
    """Features of ``frames[context_frames:]``; the leading context frames are only compared to.
    The HSV channels, grey picture and histogram of only the frames the rules look back to are
    held at once, not the whole batch's."""
    span = drift_span(rate)
    nan = float("nan")
    out = SceneFeatures.empty()
    # (channels, grey, histogram) of the latest frames, the current one last
    recent: deque[tuple[Channels, np.ndarray, np.ndarray]] = deque(maxlen=max(span, FLASH_SPAN) + 1)
    for i, frame in enumerate(frames):
        hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
        recent.append((_channels(hsv), cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), _histogram(hsv)))
        if i < context_frames:
            continue
        channels, grey, hist = recent[-1]
        previous_channels, previous_grey, _ = recent[-2] if i >= 1 else (None, None, None)
        out.frame_indices.append(frame_indices[i])
        out.timestamps.append(timestamps[i])
        out.activity.append(_mean_abs_diff(channels, previous_channels) if i >= 1 else nan)
        out.luma.append(cv2.mean(grey)[0])
        out.flash_gap.append(
            _mean_abs_diff(channels, recent[-1 - FLASH_SPAN][0]) if i >= FLASH_SPAN else nan
        )
        out.drift.append(
            float(0.5 * np.abs(hist - recent[-1 - span][2]).sum()) if i >= span else nan
        )
        out.flat.append(_flatness(frame))
        laplacian = cv2.Laplacian(grey, cv2.CV_16S)
        out.sharpness.append(cv2.norm(laplacian, cv2.NORM_L1) / laplacian.size / 255.0)
        out.spread.append(_spread(grey, previous_grey) if i >= 1 else nan)
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of every run of True in ``mask``."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _confidence(margin: float) -> float:
    """0.5 where a measure just met its threshold (``margin`` 1), 1.0 from twice it."""
    return round(float(min(1.0, 0.5 * margin)), 3)


def _median(values: np.ndarray) -> float:
    """Median ignoring ``nan``; ``nan`` where nothing is left."""
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else float("nan")


def _around(values: np.ndarray, i: int, j: int, width: int) -> float:
    """Median of ``values`` in the ``width`` frames either side of ``[i, j)``."""
    return _median(np.concatenate([values[max(0, i - width) : i], values[j : j + width]]))


@dataclass(frozen=True)
class Boundary:
    frame: int  # position in the feature arrays: the first frame of the new shot
    kind: str  # "cut", "fade", "dissolve", "wipe"
    confidence: float = 1.0


@dataclass
class ShotDetector:
    """Turns a video's :class:`SceneFeatures` into shot boundaries. Thresholds in ``docs/``."""

    cut_min_activity: float = 0.03
    cut_neighbour_ratio: float = 3.0
    cut_window: int = 2
    flash_return_ratio: float = 0.5
    flash_luma: float = 30.0
    black_level: float = 4.0
    flat_share: float = 0.9
    min_flat_seconds: float = 0.1
    dissolve_drift: float = 0.2
    dissolve_peak: float = 0.27
    dissolve_contrast: float = 2.0
    whip_motion_ratio: float = 3.0
    whip_blur_ratio: float = 0.6
    wipe_spread: float = 0.02
    min_scene_seconds: float = 0.3

    def boundaries(self, f: SceneFeatures, rate: float) -> list[Boundary]:
        activity, luma = f.array("activity"), f.array("luma")
        flat_ends = self._flat_ends(luma, f.array("flat"), rate)
        cuts = self._cuts(activity, f.array("flash_gap"), luma)
        gradual = self._gradual(f, rate, flat_ends + cuts)
        # A flat run's ends come first: they are where a cut to black or a fade really is
        return self._merge([flat_ends, cuts, gradual], round(self.min_scene_seconds * rate))

    def _flash_frames(self, luma: np.ndarray) -> np.ndarray:
        """Frames in a run of 1..FLASH_SPAN-1 frames brighter than the frames either side."""
        n = len(luma)
        flash = np.zeros(n, dtype=bool)
        for length in range(1, FLASH_SPAN):
            for s in range(1, n - length):
                inside = luma[s : s + length].min()
                if inside >= max(luma[s - 1], luma[s + length]) + self.flash_luma:
                    flash[s : s + length] = True
        return flash

    def _cuts(
        self, activity: np.ndarray, flash_gap: np.ndarray, luma: np.ndarray
    ) -> list[Boundary]:
        cuts = []
        n = len(activity)
        flash = self._flash_frames(luma)
        for i in range(1, n):
            a = activity[i]
            # dark pictures change less in absolute terms: the floor falls with brightness
            floor = self.cut_min_activity * np.clip(max(luma[i], luma[i - 1]) / 128, 0.15, 1.0)
            if not a >= floor:
                continue
            lo, hi = max(0, i - self.cut_window), min(n, i + self.cut_window + 1)
            local = np.nan_to_num(_median(np.concatenate([activity[lo:i], activity[i + 1 : hi]])))
            if a < self.cut_neighbour_ratio * local:
                continue
            # A flash: the spike starts or ends a run of bright frames, or the picture
            # FLASH_SPAN frames after the spike is back to the one before it (the flash's
            # start), or this frame is back to one FLASH_SPAN before (its end).
            after = i - 1 + FLASH_SPAN  # flash_gap[after] compares frame i-1+SPAN with i-1
            returns_later = after < n and flash_gap[after] < self.flash_return_ratio * a
            returned_now = flash_gap[i] < self.flash_return_ratio * a
            if flash[i] or flash[i - 1] or returns_later or returned_now:
                continue
            margin = min(a / floor, a / max(self.cut_neighbour_ratio * local, 1e-6))
            cuts.append(Boundary(i, "cut", _confidence(margin)))
        return cuts

    def _flat_ends(self, luma: np.ndarray, flat: np.ndarray, rate: float) -> list[Boundary]:
        """Both ends of every run of flat frames (longer than a flash): a ``cut`` where the
        brightness jumped there in one frame, else a ``fade``."""
        min_run = max(FLASH_SPAN, round(self.min_flat_seconds * rate))
        n = len(luma)
        ends = []

        def kind(inside: int, outside: int, far: int) -> str:
            step, total = abs(luma[inside] - luma[outside]), abs(luma[inside] - luma[far])
            return "cut" if step >= 0.6 * total else "fade"

        for i, j in _runs((luma < self.black_level) | (flat >= self.flat_share)):
            if j - i >= min_run:
                confidence = _confidence((j - i) / min_run)
                if i > 0:
                    ends.append(Boundary(i, kind(i, i - 1, max(0, i - FLASH_SPAN)), confidence))
                if j < n:
                    ends.append(
                        Boundary(j, kind(j - 1, j, min(n - 1, j - 1 + FLASH_SPAN)), confidence)
                    )
        return ends

    def _gradual(self, f: SceneFeatures, rate: float, explained: list[Boundary]) -> list[Boundary]:
        span = drift_span(rate)
        drift, activity = f.array("drift"), f.array("activity")
        sharpness, spread = f.array("sharpness"), f.array("spread")
        found = []
        for i, j in _runs(np.nan_to_num(drift, nan=0.0) >= self.dissolve_drift):
            run = drift[i:j]
            if j - i < span // 2 or np.nanmax(run) < self.dissolve_peak:
                continue
            if any(i - 2 <= b.frame <= j + 1 for b in explained):
                continue
            baseline = _around(drift, i, j, 2 * span)
            if not np.nanmax(run) >= self.dissolve_contrast * baseline:
                continue  # colours drift as much around it (or nothing is around): a long pan
            lo = max(0, i - span)  # the change itself starts up to one span before the run
            motion = np.nanpercentile(activity[lo:j], 90)
            calm = _around(activity, lo, j, span)
            sides = [_median(sharpness[max(0, lo - span) : lo]), _median(sharpness[j : j + span])]
            blur = np.nanmin(sharpness[lo:j]) / max(np.nan_to_num(sides).max(), 1e-6)
            if motion > self.whip_motion_ratio * calm and blur < self.whip_blur_ratio:
                continue  # a whip pan or a fast zoom: the camera moved, the shot did not end
            edge = np.nanpercentile(spread[lo:j], 75) - _around(spread, lo, j, span)
            peak = i + int(np.nanargmax(run))
            found.append(
                Boundary(
                    max(i, peak - span // 2),
                    "wipe" if edge >= self.wipe_spread else "dissolve",
                    _confidence(float(np.nanmax(run)) / self.dissolve_peak),
                )
            )
        return found

    @staticmethod
    def _merge(by_priority: list[list[Boundary]], min_gap: int) -> list[Boundary]:
        """Boundaries closer than ``min_gap`` frames are one: the first list's, then the
        earliest."""
        kept: list[Boundary] = []
        for found in by_priority:
            for b in sorted(found, key=lambda b: b.frame):
                if b.frame > 0 and all(abs(b.frame - k.frame) >= max(1, min_gap) for k in kept):
                    kept.append(b)
        return sorted(kept, key=lambda b: b.frame)


def scenes_from_boundaries(
    timestamps: list[float], boundaries: list[Boundary], duration: float
) -> list[tuple[float, float]]:
    """Contiguous ``(start, end)`` shots covering ``[0, duration]``."""
    starts = [0.0] + [timestamps[b.frame] for b in boundaries]
    end = max(duration, timestamps[-1] if timestamps else 0.0)
    return [(s, e) for s, e in zip(starts, [*starts[1:], end], strict=True) if e > s]
