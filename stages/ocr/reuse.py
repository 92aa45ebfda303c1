"""Text is read only where the picture changed since the OCR stage read it.

A frame is compared on a grid of blocks (``framewise/picture_change.py``) with the pictures of
the last few readings of its sequence, and planned against the one that leaves least to read.
Rows of blocks are read again only where they changed *and* have texture now (a flat block,
such as black or sky, cannot hold text):

* nothing changed: its text is that reading's text;
* some rows changed: full-width bands over the textured ones (one block of margin) are read
  again; lines of that reading that touch no changed row are kept as they were;
* bands over most of the frame: it is read whole, as is a sequence's first frame where most
  rows have texture.

A reading's picture keeps each row as it was when that row's text was last established, not as
it was in the latest frame: a change slower than the threshold between samples (a caption
fading in over many seconds, a whole picture fading) adds up until it is read. A shift of
brightness alone is no reason to read: an exposure change that moves no pixel of a row by a
block change leaves its text as it was. Several pictures are kept, so that a cut back to a shot
already read (an interview's two cameras) reads nothing. Text that appears, changes or
disappears changes its blocks, so it is read at the sampled rate like before; a still picture
with a copyright line is read once. The memory is per segment of a job (``sequence_of``), so no
job's text ever stands in for another's, and a job's segments, decoded at once and arriving
interleaved, each compare with their own frames.

Where a frame is read, each line the detector finds is recognized only if the pixels around it
changed since it was last recognized (:class:`LineMemory`): a caption or a logo over a moving
camera, read whole again for the picture behind it, keeps its text without the recognizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from framewise.picture_change import (
    BLOCK,
    BLOCK_CHANGE,
    GRID,
    RecentSequences,
    changed_rows,
    difference,
)
from stages.ocr.engine import OcrLine

TEXTURE = 16  # grey levels between a block's darkest and brightest pixel for text to fit
WHOLE_FRAME_SHARE = 0.6  # bands taller than this in all read the whole frame instead
PICTURES_KEPT = 4  # readings remembered per sequence, each a different picture
LINE_MARGIN = 0.25  # of a line's height: how far its box may move between reads (detector
# jitter is up to 7 px on a 61 px line), and the margin of pixels compared around it
LINES_KEPT = 16  # recognized lines remembered per sequence


def textured_rows(thumb: np.ndarray) -> np.ndarray:
    """Which rows of blocks have a block with enough contrast to hold text."""
    blocks = cv2.blur(thumb, (3, 3)).reshape(GRID[1], BLOCK, GRID[0], BLOCK).astype(np.int16)
    contrast = blocks.max(axis=(1, 3)) - blocks.min(axis=(1, 3))
    return (contrast > TEXTURE).any(axis=1)


def bands(rows: np.ndarray) -> list[tuple[float, float]]:
    """Full-width bands (top, bottom as frame fractions) over ``rows``, one row of margin."""
    grown = rows.copy()
    grown[:-1] |= rows[1:]
    grown[1:] |= rows[:-1]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], grown.astype(np.int8), [0]])))
    return [(a / GRID[1], b / GRID[1]) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def share(spans: list[tuple[float, float]]) -> float:
    """How much of the frame's height ``spans`` (top, bottom as frame fractions) cover."""
    return sum(bottom - top for top, bottom in spans)


def rows_within(spans: list[tuple[float, float]]) -> np.ndarray:
    """Which rows of blocks lie within ``spans`` (top, bottom as frame fractions)."""
    centres = (np.arange(GRID[1]) + 0.5) / GRID[1]
    inside = np.zeros(GRID[1], bool)
    for top, bottom in spans:
        inside |= (centres > top) & (centres < bottom)
    return inside


@dataclass(eq=False)  # one reading is one picture: compared by identity
class Reading:
    """A picture the stage read, as of the moment each row's text was established, and its
    lines."""

    thumbnail: np.ndarray
    shape: tuple[int, ...]
    lines: list[OcrLine]


@dataclass(frozen=True)
class Plan:
    """``bands`` (top, bottom as frame fractions) must be read; ``kept`` lines stand.
    ``reference`` is the reading it builds on (None: the frame is read whole), ``established``
    the rows whose text this frame settles (read, or changed to hold none)."""

    kept: list[OcrLine]
    bands: list[tuple[float, float]]
    reference: Reading | None
    established: np.ndarray


class TextMemory:
    """The last :data:`PICTURES_KEPT` :class:`Reading` of each recent sequence, and the plan
    for the next frame of one."""

    def __init__(self) -> None:
        self.readings: RecentSequences[list[Reading]] = RecentSequences()

    def plan(self, sequence: str, thumb: np.ndarray, shape: tuple[int, ...]) -> Plan:
        known = [r for r in self.readings.get(sequence) or [] if r.shape == shape]
        textured = textured_rows(thumb)
        best = None
        for reading in reversed(known):  # the most recent of equals
            plan = self._plan_against(reading, thumb, textured)
            if best is None or share(plan.bands) < share(best.bands):
                best = plan
            if not best.bands:
                break  # nothing to read: no other reading can do better
        return best or self._plan_against(None, thumb, textured)

    @staticmethod
    def _plan_against(reading: Reading | None, thumb: np.ndarray, textured: np.ndarray) -> Plan:
        if reading is None:
            changed = np.ones(GRID[1], bool)
        else:
            changed = changed_rows(reading.thumbnail, thumb)
        to_read = bands(changed & textured)
        if share(to_read) > WHOLE_FRAME_SHARE:
            to_read = [(0.0, 1.0)]
        established = changed | rows_within(to_read)
        if reading is None or established.all():  # read whole: nothing of it stands
            return Plan([], to_read, None, established)
        gone = bands(changed)  # lines touching a changed row (or its margin) are stale

        def stands(line: OcrLine) -> bool:
            return all(line.box[3] <= top or line.box[1] >= bottom for top, bottom in gone)

        kept = [line for line in reading.lines if stands(line)]
        return Plan(kept, to_read, reading, established)

    def remember(
        self, sequence: str, thumb: np.ndarray, shape: tuple[int, ...], plan: Plan, lines
    ) -> None:
        """What was read of ``thumb`` by ``plan``. A frame read whole is a new picture (the
        others are kept for a cut back to them); otherwise the rows it settled replace those
        of the picture it builds on."""
        readings = list(self.readings.get(sequence) or [])
        if plan.reference is not None:
            readings.remove(plan.reference)
            rows = np.repeat(plan.established, thumb.shape[0] // GRID[1])[:, None]
            thumb = np.where(rows, thumb, plan.reference.thumbnail)
        readings.append(Reading(thumb, shape, list(lines)))
        self.readings.put(sequence, readings[-PICTURES_KEPT:])


@dataclass(eq=False)
class RecognizedLine:
    """A line as the recognizer read it: its box (frame pixels), and the grey pixels of
    ``region`` (the box and a margin) as they were then."""

    box: tuple[float, float, float, float]
    region: tuple[int, int, int, int]
    grey: np.ndarray
    reading: tuple[str, float]


def grey_region(frame: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = region
    return cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)


class LineMemory:
    """The last :data:`LINES_KEPT` lines recognized in each of a few recent sequences. A box
    the detector finds again (each edge within :data:`LINE_MARGIN` of the line's height) over
    pixels that moved by no more than a block change (``BLOCK_CHANGE``) has that line's text:
    the recognizer would be given the same picture."""

    def __init__(self) -> None:
        # a worker reads a few segments at once; a sequence forgotten is recognized again
        self.lines: RecentSequences[list[RecognizedLine]] = RecentSequences(size=8)

    def recall(
        self, sequence: str, frame: np.ndarray, box: tuple[float, float, float, float]
    ) -> tuple[str, float] | None:
        for line in reversed(self.lines.get(sequence) or []):
            margin = LINE_MARGIN * (line.box[3] - line.box[1])
            if any(abs(a - b) > margin for a, b in zip(box, line.box, strict=True)):
                continue  # another box
            moved = difference(grey_region(frame, line.region), line.grey)
            if moved.max() <= BLOCK_CHANGE:
                return line.reading
        return None

    def learn(
        self,
        sequence: str,
        frame: np.ndarray,
        box: tuple[float, float, float, float],
        reading: tuple[str, float],
    ) -> None:
        x0, y0, x1, y1 = box
        margin = LINE_MARGIN * (y1 - y0)
        h, w = frame.shape[:2]
        region = (
            max(0, math.floor(x0 - margin)),
            max(0, math.floor(y0 - margin)),
            min(w, math.ceil(x1 + margin)),
            min(h, math.ceil(y1 + margin)),
        )
        line = RecognizedLine(box, region, grey_region(frame, region), reading)
        self.lines.put(sequence, [*(self.lines.get(sequence) or []), line][-LINES_KEPT:])
