"""Text is read only where the picture changed since the frame the OCR stage last read.

A frame is compared with that frame on a 16x9 grid of blocks (a 480x270 grey thumbnail,
lightly blurred against codec noise). Rows of blocks are read again only where they changed
*and* have texture now (a flat block, such as black or sky, cannot hold text):

* nothing changed: its text is the text read last time;
* some rows changed: full-width bands over the textured ones (one block of margin) are read
  again; lines read last time that touch no changed row are kept as they were;
* bands over most of the frame: it is read whole, as is a job's first frame where most rows
  have texture.

Text that appears, changes or disappears changes its blocks, so it is read at the sampled rate
like before; a still picture with a copyright line is read once. The memory is per job, so no
job's text ever stands in for another's.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from stages.ocr.engine import OcrLine

GRID = (16, 9)  # blocks across, down
BLOCK = 30  # thumbnail pixels per block side
BLOCK_CHANGE = 25  # grey levels (after a 3x3 blur) that make a block changed
GLOBAL_CHANGE = 2.0  # grey levels in the median block: a fade or exposure change, every row
TEXTURE = 16  # grey levels between a block's darkest and brightest pixel for text to fit
WHOLE_FRAME_SHARE = 0.6  # a band taller than this reads the whole frame instead
JOBS_REMEMBERED = 64


def thumbnail(frame: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    size = (GRID[0] * BLOCK, GRID[1] * BLOCK)
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def changed_rows(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Which of the grid's rows of blocks changed; every row for a global change."""
    diff = cv2.blur(cv2.absdiff(before, after), (3, 3)).reshape(GRID[1], BLOCK, GRID[0], BLOCK)
    if np.median(diff.mean(axis=(1, 3))) > GLOBAL_CHANGE:
        return np.ones(GRID[1], dtype=bool)
    return (diff.max(axis=(1, 3)) > BLOCK_CHANGE).any(axis=1)


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
    """What the stage last read for a job: the frame's thumbnail and shape, and its lines."""

    thumbnail: np.ndarray
    shape: tuple[int, ...]
    lines: list[OcrLine]


@dataclass(frozen=True)
class Plan:
    """``bands`` (top, bottom as frame fractions) must be read; ``kept`` lines stand."""

    kept: list[OcrLine]
    bands: list[tuple[float, float]]


class TextMemory:
    """The last :class:`Reading` of the most recent jobs, and the plan for a job's next frame."""

    def __init__(self, jobs: int = JOBS_REMEMBERED) -> None:
        self.jobs = jobs
        self.readings: OrderedDict[str, Reading] = OrderedDict()

    def plan(self, job_id: str, thumb: np.ndarray, shape: tuple[int, ...]) -> Plan:
        last = self.readings.get(job_id)
        known = last is not None and last.shape == shape
        changed = changed_rows(last.thumbnail, thumb) if known else np.ones(GRID[1], bool)
        to_read = bands(changed & textured_rows(thumb))
        if sum(bottom - top for top, bottom in to_read) > WHOLE_FRAME_SHARE:
            to_read = [(0.0, 1.0)]
        if not known:
            return Plan([], to_read)
        gone = bands(changed)  # lines touching a changed row (or its margin) are stale

        def stands(line: OcrLine) -> bool:
            return all(line.box[3] <= top or line.box[1] >= bottom for top, bottom in gone)

        return Plan([line for line in last.lines if stands(line)], to_read)

    def remember(self, job_id: str, thumb: np.ndarray, shape: tuple[int, ...], lines) -> None:
        self.readings[job_id] = Reading(thumb, shape, list(lines))
        self.readings.move_to_end(job_id)
        while len(self.readings) > self.jobs:
            self.readings.popitem(last=False)
