"""The scene stage: shot boundaries and frame activity, from every frame of the video."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from framewise.config import Settings
from schemas.messages import FrameBatch
from stages.scene.detector import (
    SceneFeatures,
    ShotDetector,
    frame_features,
    scenes_from_boundaries,
)
from stages.spec import StageSpec, VideoContext


class SceneAnalyzer:
    """Per-batch pixel work: :func:`frame_features` on the batch's motion frames."""

    def analyze(self, frames: np.ndarray, batch: FrameBatch) -> dict[str, Any]:
        features = frame_features(
            frames, batch.context_frames, batch.frame_indices, batch.timestamps, batch.fps
        )
        return features.to_payload()


def on_uniform_grid(timestamps: list[float], diffs: list[float], rate: float) -> list[float]:
    """``frame_activity_diffs`` as the contract reads them: value ``k`` at ``(k + 1) /
    rate`` seconds. For a variable-frame-rate video the frames' own times are not on that
    grid, so each grid step takes the largest change among the frames that fall in it (0 where
    none does: nothing changed)."""
    if not diffs or not rate:
        return diffs
    start, step = timestamps[0], 1.0 / rate
    times = timestamps[1:]
    if all(abs(t - start - (i + 1) * step) <= step / 2 for i, t in enumerate(times)):
        return diffs  # constant frame rate: the frames are the grid
    grid = [0.0] * max(1, round((times[-1] - start) * rate))
    for t, d in zip(times, diffs, strict=True):
        k = min(len(grid) - 1, max(0, math.ceil((t - start) * rate - 1e-6) - 1))
        grid[k] = max(grid[k], d)
    return grid


def finalize_video(ctx: VideoContext, settings: Settings) -> dict[str, Any]:
    features = SceneFeatures.from_payloads(ctx.payloads)
    if not features.timestamps:
        return {}
    boundaries = ShotDetector().boundaries(features, ctx.analysed_fps)
    scenes = scenes_from_boundaries(features.timestamps, boundaries, ctx.probe.duration_seconds)
    diffs = [0.0 if math.isnan(a) else min(1.0, max(0.0, a)) for a in features.activity[1:]]
    diffs = on_uniform_grid(features.timestamps, diffs, ctx.analysed_fps)
    return {
        "raw_scenes": [{"start_seconds": s, "end_seconds": e} for s, e in scenes],
        "frame_activity_diffs": [round(d, 6) for d in diffs],
    }


SCENE = StageSpec(
    name="scene",
    profile="motion",
    media_types=frozenset({"video"}),
    make_analyzer=lambda settings: SceneAnalyzer(),
    finalize_video=finalize_video,
)
