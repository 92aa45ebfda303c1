"""Text is read only where the picture changed since the frame the OCR stage last read.

A frame is compared with that frame on a grid of blocks (``framewise/picture_change.py``). Rows
of blocks are read again only where they changed
*and* have texture now (a flat block, such as black or sky, cannot hold text):

* nothing changed: its text is the text read last time;
* some rows changed: full-width bands over the textured ones (one block of margin) are read
  again; lines read last time that touch no changed row are kept as they were;
* bands over most of the frame: it is read whole, as is a job's first frame where most rows
  have texture.

Text that appears, changes or disappears changes its blocks, so it is read at the sampled rate
like before; a still picture with a copyright line is read once. The memory is per segment of
a job (``sequence_of``), so no job's text ever stands in for another's, and a job's segments,
decoded at once and arriving interleaved, each compare with their own previous frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from framewise.picture_change import BLOCK, GRID, RecentSequences, changed_rows
from stages.ocr.engine import OcrLine

TEXTURE = 16  # grey levels between a block's darkest and brightest pixel for text to fit
WHOLE_FRAME_SHARE = 0.6  # bands taller than this in all read the whole frame instead


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


@dataclass
class Reading:
    """What the stage last read in a sequence: the frame's thumbnail and shape, its lines."""

    thumbnail: np.ndarray
    shape: tuple[int, ...]
    lines: list[OcrLine]


@dataclass(frozen=True)
class Plan:
    """``bands`` (top, bottom as frame fractions) must be read; ``kept`` lines stand."""

    kept: list[OcrLine]
    bands: list[tuple[float, float]]


class TextMemory:
    """The last :class:`Reading` of the most recent sequences, and the plan for the next
    frame of one."""

    def __init__(self) -> None:
        self.readings: RecentSequences[Reading] = RecentSequences()

    def plan(self, sequence: str, thumb: np.ndarray, shape: tuple[int, ...]) -> Plan:
        last = self.readings.get(sequence)
        known = last is not None and last.shape == shape
        changed = changed_rows(last.thumbnail, thumb) if known else np.ones(GRID[1], bool)
        to_read = bands(changed & textured_rows(thumb))
        if sum(bottom - top for top, bottom in to_read) > WHOLE_FRAME_SHARE:
            to_read = [(0.0, 1.0)]
        if last is None or not known:
            return Plan([], to_read)
        gone = bands(changed)  # lines touching a changed row (or its margin) are stale

        def stands(line: OcrLine) -> bool:
            return all(line.box[3] <= top or line.box[1] >= bottom for top, bottom in gone)

        return Plan([line for line in last.lines if stands(line)], to_read)

    def remember(self, sequence: str, thumb: np.ndarray, shape: tuple[int, ...], lines) -> None:
        self.readings.put(sequence, Reading(thumb, shape, list(lines)))
