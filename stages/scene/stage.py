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


def finalize_video(ctx: VideoContext, settings: Settings) -> dict[str, Any]:
    features = SceneFeatures.from_payloads(ctx.payloads)
    if not features.timestamps:
        return {}
    boundaries = ShotDetector().boundaries(features, ctx.analysed_fps)
    scenes = scenes_from_boundaries(features.timestamps, boundaries, ctx.probe.duration_seconds)
    diffs = [0.0 if math.isnan(a) else min(1.0, max(0.0, a)) for a in features.activity[1:]]
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
