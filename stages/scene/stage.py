"""The scene stage: shot boundaries and frame activity, from every frame of the video."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from framewise.config import Settings
from framewise.inference import ModelCard
from schemas.messages import FrameBatch
from stages.scene import transnet
from stages.scene.detector import (
    Boundary,
    SceneFeatures,
    ShotDetector,
    frame_features,
    scenes_from_boundaries,
)
from stages.scene.settings import SceneSettings
from stages.spec import StageSpec, VideoContext


class SceneAnalyzer:
    """Per-batch pixel work: :func:`frame_features` on the batch's motion frames, and with
    ``FRAMEWISE_SCENE_DETECTOR=transnetv2`` TransNetV2's transition probabilities."""

    def __init__(self, settings: Settings) -> None:
        learned = settings.group(SceneSettings).detector == "transnetv2"
        self.transnet = transnet.TransNetV2(settings).load() if learned else None

    def analyze(self, frames: np.ndarray, batch: FrameBatch) -> dict[str, Any]:
        payload = frame_features(
            frames, batch.context_frames, batch.frame_indices, batch.timestamps, batch.fps
        ).to_payload()
        if self.transnet is not None:
            first, probabilities = self.transnet.predict(frames, batch.context_frames)
            payload["transition_frames"] = batch.frame_indices[first:]
            payload["transition"] = [round(float(p), 4) for p in probabilities]
        return payload


def learned_boundaries(
    ctx: VideoContext, features: SceneFeatures, threshold: float
) -> list[Boundary]:
    """TransNetV2's boundaries; a frame predicted by two batches keeps the later prediction."""
    by_frame: dict[int, float] = {}
    for payload in ctx.payloads:
        frames, values = payload.get("transition_frames", []), payload.get("transition", [])
        by_frame.update(zip(frames, values, strict=True))
    probabilities = np.array([by_frame.get(i, np.nan) for i in features.frame_indices])
    return transnet.boundaries(probabilities, threshold)


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
    scene = settings.group(SceneSettings)
    if scene.detector == "transnetv2":
        boundaries = learned_boundaries(ctx, features, scene.transnet_threshold)
    else:
        boundaries = ShotDetector().boundaries(features, ctx.analysed_fps)
    scenes = scenes_from_boundaries(features.timestamps, boundaries, ctx.probe.duration_seconds)
    diffs = [0.0 if math.isnan(a) else min(1.0, max(0.0, a)) for a in features.activity[1:]]
    diffs = on_uniform_grid(features.timestamps, diffs, ctx.analysed_fps)
    return {
        "raw_scenes": [{"start_seconds": s, "end_seconds": e} for s, e in scenes],
        "frame_activity_diffs": [round(d, 6) for d in diffs],
        # stage-internal (the aggregator drops "_" fields from the public body): how each
        # shot began, for the stages that finalise after this one
        "_shot_boundaries": [
            {"seconds": features.timestamps[b.frame], "kind": b.kind, "confidence": b.confidence}
            for b in boundaries
        ],
    }


def scene_models(settings: Settings) -> list[tuple[ModelCard, Path]]:
    if settings.group(SceneSettings).detector == "transnetv2":
        return [(transnet.CARD, transnet.model_path(settings))]
    return []


SCENE = StageSpec(
    name="scene",
    profile="motion",
    media_types=frozenset({"video"}),
    make_analyzer=SceneAnalyzer,
    finalize_video=finalize_video,
    models=scene_models,
)
