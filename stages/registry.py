"""The stage registry: what a stage is, and the list of stages the pipeline runs.

A stage is a :class:`StageSpec`: which frames it reads (a sampling profile), how a worker turns
one frame batch into a JSON payload (its analyzer) and how the aggregator turns all payloads of
a job into result fields. Adding a stage means writing those and adding it to :func:`stages`;
neither the decode worker nor the aggregator changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from framewise.config import Settings
from framewise.inference import ModelCard
from schemas.messages import FrameBatch, VideoProbe


class BatchAnalyzer(Protocol):
    """Worker side of a stage: loaded once per process, called for every frame batch."""

    def analyze(self, frames: np.ndarray, batch: FrameBatch) -> dict[str, Any]: ...


@dataclass
class VideoContext:
    """What a stage's video finaliser sees: its payloads in time order and the fields so far."""

    probe: VideoProbe
    analysed_fps: float
    payloads: list[dict[str, Any]]
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageSpec:
    name: str
    profile: str  # "motion" or "detail"
    media_types: frozenset[str]
    make_analyzer: Callable[[Settings], BatchAnalyzer]
    finalize_video: Callable[[VideoContext, Settings], dict[str, Any]] | None = None
    finalize_image: Callable[[dict[str, Any], Settings], dict[str, Any]] | None = None
    # Stage-specific extras on the worker's Faust app (the face stage's allowlist agents).
    attach: Callable[[Any, Settings, BatchAnalyzer], None] | None = None
    # Whether the stage's models are on this machine; with FRAMEWISE_STAGES unset, a stage
    # runs exactly when they are.
    installed: Callable[[Settings], bool] = lambda settings: True
    # The model files the stage loads under these settings, for `framewise models`.
    models: Callable[[Settings], list[tuple[ModelCard, Path]]] = lambda settings: []


@lru_cache
def stages() -> dict[str, StageSpec]:
    """Every stage, in the order the aggregator finalises them (scene first: others use shots)."""
    from stages.face.stage import FACE
    from stages.ocr.stage import OCR
    from stages.scene.stage import SCENE
    from stages.tag.stage import TAG

    return {spec.name: spec for spec in (SCENE, TAG, OCR, FACE)}


def active_stages(settings: Settings) -> list[str]:
    """``FRAMEWISE_STAGES``, or every stage whose models are installed, in registry order."""
    known = stages()
    if settings.stages is None:
        return [name for name, spec in known.items() if spec.installed(settings)]
    unknown = [name for name in settings.stages if name not in known]
    if unknown:
        raise ValueError(f"FRAMEWISE_STAGES names unknown stages {unknown}; known: {list(known)}")
    return [name for name in known if name in settings.stages]


def enabled_stages(settings: Settings, media_type: str) -> list[StageSpec]:
    known = stages()
    return [
        known[name] for name in active_stages(settings) if media_type in known[name].media_types
    ]
