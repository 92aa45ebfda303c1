"""What a stage is: the interface every stage implements and the pipeline relies on.

A stage is a :class:`StageSpec`: which frames it reads (a sampling profile, and the frames of
each batch it samples), how a worker turns one frame batch into a JSON payload (its analyzer),
how the aggregator turns all payloads of a job into result fields, which stages' results it
reads, and whether its models are installed.
The list of stages is ``stages/registry.py``; this module sits below it and below every stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from framewise.config import Settings
from framewise.inference import ModelCard
from schemas.messages import FrameBatch, VideoProbe


class BatchAnalyzer(Protocol):
    """Worker side of a stage: loaded once per process, called for every frame batch."""

    def analyze(self, frames: np.ndarray, batch: FrameBatch) -> dict[str, Any]: ...


def sampled(batch: FrameBatch, indices: list[int]) -> FrameBatch:
    """``batch`` as it describes only its frames at ``indices`` (ascending): the message an
    analyzer sees with the frames :attr:`StageSpec.samples` chose."""
    return batch.model_copy(
        update={
            "context_frames": sum(i < batch.context_frames for i in indices),
            "frame_indices": [batch.frame_indices[i] for i in indices],
            "timestamps": [batch.timestamps[i] for i in indices],
        }
    )


@dataclass
class VideoContext:
    """What a stage's video finaliser sees: its payloads in time order and the fields so far."""

    probe: VideoProbe
    analysed_fps: float
    payloads: Iterable[dict[str, Any]]  # in time order; may be walked more than once
    result: dict[str, Any] = field(default_factory=dict)

    def shots(self) -> list[tuple[float, float]]:
        """The raw scenes found so far (the scene stage finalises first), or the whole video
        as one scene where none were found."""
        scenes = [(s["start_seconds"], s["end_seconds"]) for s in self.result.get("raw_scenes", [])]
        return scenes or [(0.0, self.probe.duration_seconds)]

    def shot_boundaries(self) -> list[dict[str, Any]]:
        """How each shot after the first began: ``seconds``, ``kind`` (cut, fade, dissolve,
        wipe) and ``confidence``, from the scene stage (internal, not in the public body)."""
        return list(self.result.get("_shot_boundaries", []))


@dataclass(frozen=True)
class StageSpec:
    name: str
    profile: str  # "motion" or "detail"
    media_types: frozenset[str]
    make_analyzer: Callable[[Settings], BatchAnalyzer]
    # Stages whose result fields this one reads in its finaliser (tag and face read the scene
    # stage's shots): the registry finalises those first.
    requires: tuple[str, ...] = ()
    finalize_video: Callable[[VideoContext, Settings], dict[str, Any]] | None = None
    finalize_image: Callable[[dict[str, Any], Settings], dict[str, Any]] | None = None
    # The frames of a batch the analyzer reads, as indices into the batch (None: every one);
    # the worker decodes only those and hands the analyzer that part of the batch.
    samples: Callable[[FrameBatch, Settings], list[int] | None] = lambda batch, settings: None
    # Stage-specific extras on the worker's Faust app (the face stage's allowlist agents).
    attach: Callable[[Any, Settings, BatchAnalyzer], None] | None = None
    # Whether the stage's models are on this machine; with FRAMEWISE_STAGES unset, a stage
    # runs exactly when they are.
    installed: Callable[[Settings], bool] = lambda settings: True
    # The model files the stage loads under these settings, for `framewise models`.
    models: Callable[[Settings], list[tuple[ModelCard, Path]]] = lambda settings: []
