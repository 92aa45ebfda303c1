"""Synthetic edits made from real photos: every transition editors use and every trap that must
stay inside one shot, each with the frames where a person puts its boundaries.

Every shot is a real photo filmed by a moving virtual camera (a slow pan and zoom, never a
still), so detectors are scored on pictures that change between frames as real footage does.
The tests and ``bench/`` score shot detectors on :func:`edit_suite`; ``docs/scenes.md``
records the scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

SIZE = (320, 180)  # width, height of every synthetic frame
FPS = 30
STILLS = (100, 300, 470, 620)  # leaf on a rock, deer, leaf, metal grid in testvideo.mp4


def photos(media: Path) -> list[np.ndarray]:
    """Real pictures from the test media: four shots of ``video/testvideo.mp4`` and the group
    photo ``images/faces/t1.jpg``."""
    found = []
    with av.open(str(media / "video" / "testvideo.mp4")) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in STILLS:
                found.append(frame.to_ndarray(format="rgb24"))
    t1 = cv2.imread(str(media / "images" / "faces" / "t1.jpg"))
    return [*found, cv2.cvtColor(t1, cv2.COLOR_BGR2RGB)]


@dataclass(frozen=True)
class Edit:
    """A synthetic video: ``frames`` and, for each boundary a person sees, the inclusive
    window of frame indices where one reported boundary must fall (nothing outside them) and
    the kind of that boundary."""

    name: str
    frames: np.ndarray  # (n, h, w, 3) uint8 RGB
    windows: list[tuple[int, int]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    fps: float = FPS


@dataclass(frozen=True)
class Score:
    found: int  # expected boundaries with exactly one reported boundary in their window
    missed: int
    false: int  # reported boundaries outside every window, or a second one inside a window

    @property
    def perfect(self) -> bool:
        return self.missed == 0 and self.false == 0


def score(windows: list[tuple[int, int]], reported: list[int]) -> Score:
    hits = [sum(lo <= f <= hi for f in reported) for lo, hi in windows]
    outside = sum(not any(lo <= f <= hi for lo, hi in windows) for f in reported)
    return Score(
        found=sum(h >= 1 for h in hits),
        missed=sum(h == 0 for h in hits),
        false=outside + sum(max(0, h - 1) for h in hits),
    )


def film(
    photo: np.ndarray,
    frames: int,
    *,
    pan: tuple[float, float] = (1.2, 0.4),
    zoom: tuple[float, float] = (1.0, 1.08),
    centre: tuple[float, float] = (0.5, 0.5),
    shake: float = 0.0,
    seed: int = 0,
    size: tuple[int, int] = SIZE,
) -> np.ndarray:
    """``frames`` views of ``photo`` by a camera panning ``pan`` output pixels per frame while
    its zoom goes from ``zoom[0]`` to ``zoom[1]`` around ``centre`` (fractions of the photo),
    plus random hand-held ``shake`` (pixels), at ``size`` (width, height)."""
    w, h = size
    ph, pw = photo.shape[:2]
    cover = max(w / pw, h / ph) * 1.25  # the photo at zoom 1 overfills the frame
    rng = np.random.default_rng(seed)
    out = np.empty((frames, h, w, 3), np.uint8)
    for i in range(frames):
        z = cover * (zoom[0] + (zoom[1] - zoom[0]) * i / max(1, frames - 1))
        jitter = rng.normal(0, shake, 2) if shake else (0.0, 0.0)
        cx = centre[0] * pw * z - w / 2 + pan[0] * i + jitter[0]
        cy = centre[1] * ph * z - h / 2 + pan[1] * i + jitter[1]
        matrix = np.float32([[z, 0, -cx], [0, z, -cy]])
        out[i] = cv2.warpAffine(
            photo, matrix, size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT101
        )
    return out


def _blend(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    w = weights.reshape(-1, 1, 1, 1).astype(np.float32)
    return ((1 - w) * a + w * b).round().astype(np.uint8)


def _flat(colour: tuple[int, int, int], frames: int) -> np.ndarray:
    w, h = SIZE
    return np.broadcast_to(np.uint8(colour), (frames, h, w, 3)).copy()


def _ramp(frames: int) -> np.ndarray:
    return (np.arange(frames) + 1) / (frames + 1)


def cut(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    return np.concatenate([a, b]), [(len(a) - 1, len(a) + 1)]


def fade_through(
    a: np.ndarray, b: np.ndarray, colour: tuple[int, int, int], out: int, hold: int, into: int
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``a`` fades out to a flat ``colour`` over its last ``out`` frames, the colour holds,
    then ``b`` fades in over its first ``into`` frames: two boundaries, the flat run between."""
    flat = _flat(colour, 1)[0]
    faded_out = _blend(a[-out:], np.broadcast_to(flat, a[-out:].shape), _ramp(out))
    faded_in = _blend(np.broadcast_to(flat, b[:into].shape), b[:into], _ramp(into))
    frames = np.concatenate([a[:-out], faded_out, _flat(colour, hold), faded_in, b[into:]])
    start = len(a) - out
    hold_start, hold_end = len(a), len(a) + hold
    return frames, [(start, hold_start + 1), (hold_end - 1, hold_end + into)]


def dissolve(a: np.ndarray, b: np.ndarray, length: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The last ``length`` frames of ``a`` cross-fade into the first ``length`` of ``b``."""
    mixed = _blend(a[-length:], b[:length], _ramp(length))
    start = len(a) - length
    return np.concatenate([a[:-length], mixed, b[length:]]), [(start, start + length)]


def wipe(
    a: np.ndarray, b: np.ndarray, length: int, *, push: bool = False, vertical: bool = False
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``b`` replaces ``a`` along a moving edge over ``length`` frames; with ``push`` it also
    shoves ``a`` out of the frame instead of uncovering it."""
    axis = 0 if vertical else 1
    side = a.shape[1 + axis]
    mixed = []
    for k, (fa, fb) in enumerate(zip(a[-length:], b[:length], strict=True)):
        edge = round(side * (k + 1) / (length + 1))
        if push:
            frame = np.concatenate(
                [np.take(fa, range(edge, side), axis), np.take(fb, range(edge), axis)], axis
            )
        else:
            frame = fa.copy()
            index = [slice(None), slice(None)]
            index[axis] = slice(side - edge, side)
            frame[tuple(index)] = fb[tuple(index)]
        mixed.append(frame)
    start = len(a) - length
    return np.concatenate([a[:-length], np.stack(mixed), b[length:]]), [(start, start + length)]


def flash(frames: np.ndarray, at: int, length: int) -> np.ndarray:
    """A photographer's flash: ``length`` frames from ``at`` blown out almost to white."""
    out = frames.copy()
    out[at : at + length] = np.clip(frames[at : at + length] * 0.2 + 215, 0, 255).astype(np.uint8)
    return out


def caption(frames: np.ndarray, texts: list[str]) -> np.ndarray:
    """Subtitle-sized text that changes ``len(texts)`` times, and a small ball crossing."""
    out = frames.copy()
    per = len(frames) // len(texts)
    w, h = SIZE
    for i, frame in enumerate(out):
        text = texts[min(i // per, len(texts) - 1)]
        cv2.putText(frame, text, (12, h - 16), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
        cv2.circle(frame, (int(w * i / len(out)), h // 3), 9, (250, 200, 0), -1)
    return out


def whip_pan(photo: np.ndarray, frames: int, whip_at: int, whip_frames: int) -> np.ndarray:
    """A slow pan that whips sideways across the photo (with motion blur), then settles."""
    speeds = np.full(frames, 1.0)
    speeds[whip_at : whip_at + whip_frames] = 45.0
    offsets = np.concatenate([[0.0], np.cumsum(speeds)[:-1]])
    span = offsets[-1] + SIZE[0]
    wide = cv2.resize(photo, (int(span * 1.1), int(span * 1.1 * photo.shape[0] / photo.shape[1])))
    top = (wide.shape[0] - SIZE[1]) // 2
    out = np.empty((frames, SIZE[1], SIZE[0], 3), np.uint8)
    for i, x in enumerate(offsets):
        steps = np.linspace(x, x + speeds[i], 4 if speeds[i] > 2 else 1)  # shutter smear
        views = [
            wide[top : top + SIZE[1], int(s) : int(s) + SIZE[0]].astype(np.float32) for s in steps
        ]
        out[i] = np.mean(views, axis=0).astype(np.uint8)
    return out


def darken(frames: np.ndarray, factor: float) -> np.ndarray:
    return (frames * factor).astype(np.uint8)


def edit_suite(photos: list[np.ndarray]) -> list[Edit]:
    """One edit per transition and per trap, from at least four distinct real ``photos``."""
    if len(photos) < 4:
        raise ValueError("edit_suite needs at least four photos")
    p = photos
    second = FPS  # frames

    def shot(k: int, frames: int = 2 * second, **camera) -> np.ndarray:
        return film(p[k % len(p)], frames, seed=k, **camera)

    edits: list[Edit] = []

    def add(name: str, made: tuple[np.ndarray, list[tuple[int, int]]], kind: str) -> None:
        frames, windows = made
        edits.append(Edit(name, frames, windows, [kind] * len(windows)))

    def trap(name: str, frames: np.ndarray) -> None:
        edits.append(Edit(name, frames))

    add("hard cut", cut(shot(0), shot(1)), "cut")
    for name, colour in [
        ("black", (0, 0, 0)),
        ("white", (255, 255, 255)),
        ("brand red", (200, 16, 46)),
    ]:
        add(
            f"fade through {name}",
            fade_through(shot(1, 3 * second), shot(2, 3 * second), colour, 15, 12, 15),
            "fade",
        )
    for seconds in (0.25, 0.5, 1.0, 1.5, 2.0):
        length = round(seconds * FPS)
        made = dissolve(shot(2, 3 * second), shot(3, 3 * second), length)
        add(f"dissolve {seconds} s", made, "dissolve")
    add("wipe 0.5 s", wipe(shot(3), shot(0), 15), "wipe")
    made = wipe(shot(0, 3 * second), shot(2, 3 * second), 30, vertical=True)
    add("vertical wipe 1 s", made, "wipe")
    add("push 0.5 s", wipe(shot(1), shot(3), 15, push=True), "wipe")
    wide = film(p[0], 2 * second, zoom=(1.0, 1.05), centre=(0.4, 0.5))
    close = film(p[0], 2 * second, zoom=(2.2, 2.3), centre=(0.62, 0.45), pan=(-1.0, 0.3))
    add("cut, same subject", cut(wide, close), "cut")
    add("cut between dark shots", cut(darken(shot(1), 0.16), darken(shot(3), 0.16)), "cut")
    for length in (1, 2, 3):
        trap(f"flash {length} frames", flash(shot(2, 3 * second), 40, length))
    frames, windows = cut(shot(0), shot(1))
    before, after = flash(frames, 2 * second - 3, 2), flash(frames, 2 * second + 1, 2)
    edits.append(Edit("flash just before a cut", before, windows, ["cut"]))
    edits.append(Edit("flash just after a cut", after, windows, ["cut"]))
    trap("whip pan", whip_pan(p[1], 3 * second, 40, 8))
    trap("fast zoom", film(p[2], 3 * second, zoom=(1.0, 2.6), pan=(0.0, 0.0)))
    trap("hand-held shake", film(p[3], 3 * second, shake=7.0, pan=(0.5, 0.0)))
    trap(
        "text and a small object change",
        caption(shot(0, 3 * second), ["Chapter one", "Price: 10 EUR", "Call now"]),
    )
    return edits
