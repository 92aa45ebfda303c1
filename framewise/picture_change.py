"""Where a frame's picture changed since another frame of the same job: the test a model stage
uses to run its model only where something changed (OCR by rows of blocks, tags and faces by
whole frames).

Both frames are reduced to a 480x270 grey thumbnail on a 16x9 grid of blocks and lightly
blurred against codec noise. A block changed where some pixel moved more than
``BLOCK_CHANGE`` grey levels. For a model that answers for the whole picture (tags, faces), a
shift of overall brightness (the median block moved, as in a fade or an exposure change) is a
change too; text is read again only where its own pixels moved that far.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

import cv2
import numpy as np

from schemas.messages import FrameBatch

T = TypeVar("T")

GRID = (16, 9)  # blocks across, down
BLOCK = 30  # thumbnail pixels per block side
BLOCK_CHANGE = 25  # grey levels (after a 3x3 blur) that make a block changed
GLOBAL_CHANGE = 2.0  # grey levels in the median block: a fade or an exposure change


def thumbnail(frame: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    size = (GRID[0] * BLOCK, GRID[1] * BLOCK)
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def difference(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """How far each pixel of two grey pictures of one size moved, blurred against codec noise:
    a pixel over ``BLOCK_CHANGE`` changed."""
    return cv2.blur(cv2.absdiff(before, after), (3, 3))


def changed_rows(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Which of the grid's rows of blocks have a pixel that moved more than a block change."""
    diff = difference(before, after)
    return diff.reshape(GRID[1], -1).max(axis=1) > BLOCK_CHANGE  # a row of blocks is contiguous


def picture_changed(before: np.ndarray, after: np.ndarray) -> bool:
    """Whether some block changed, or the overall brightness shifted (a fade or an exposure
    change moves every block a little, and a model's answer for the whole picture with it)."""
    diff = difference(before, after)
    if diff.max() > BLOCK_CHANGE:
        return True
    block_means = cv2.resize(diff.astype(np.float32), GRID, interpolation=cv2.INTER_AREA)
    return bool(np.median(block_means) > GLOBAL_CHANGE)


def sequence_of(batch: FrameBatch) -> str:
    """The run of frames a batch continues: one segment of one job. A job's segments are
    decoded at once, so their batches reach a stage interleaved; what a stage remembers of
    the frame before must come from the same segment (36 s away it has always changed)."""
    return f"{batch.job_id}/{batch.segment_index}"


class RecentSequences(Generic[T]):
    """One value per run of frames (:func:`sequence_of`: what a stage last saw of it) for the
    ``size`` most recent runs. Keyed by job and segment, so nothing seen in one job ever
    stands in for another's."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._values: OrderedDict[str, T] = OrderedDict()

    def get(self, sequence: str) -> T | None:
        return self._values.get(sequence)

    def put(self, sequence: str, value: T) -> None:
        self._values[sequence] = value
        self._values.move_to_end(sequence)
        while len(self._values) > self.size:
            self._values.popitem(last=False)
