"""What every face model pack provides: detect, align, embed, attributes (gender and age).

A pack bundles a detector, an aligner, an embedder and an attribute model that belong
together (the aligner makes the crop the embedder was trained on). The face stage only talks
to this interface, so packs are configuration (``FRAMEWISE_FACE_PACK``): ``dlib`` (the
default, permissively licensed, installed from the package registries) or ``insightface``
(``buffalo_l`` layout, non-commercial). The embedding length and the calibrated thresholds are
properties of a pack, and embeddings of different packs are never compared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from framewise.inference import ModelCard


@dataclass
class Detection:
    bbox: np.ndarray  # x0, y0, x1, y1 in pixels
    score: float
    keypoints: np.ndarray | None = None  # 5 x 2 where the detector gives them


@dataclass
class AlignedFace:
    detection: Detection
    chip: np.ndarray  # RGB crop aligned as the embedder wants it; also the person's thumbnail
    landmarks: Any  # the pack's own landmark object, for its attribute model


@dataclass(frozen=True)
class PackThresholds:
    """Calibrated per pack on real faces (docs/models.md); settings may override each."""

    cluster: float  # cosine at which two faces are one person
    allowlist: float  # cosine to an enrolled face that matches
    gender_confidence: float  # below this, gender is `unidentified`


class FacePack(ABC):
    """``load()`` once per worker; the other methods take RGB frames."""

    name: str
    embedding_size: int
    thresholds: PackThresholds

    @abstractmethod
    def load(self) -> Self: ...

    @abstractmethod
    def models(self) -> list[tuple[ModelCard, Path]]:
        """Every file the pack loads, with its license and source."""

    @abstractmethod
    def detect(self, rgb: np.ndarray) -> list[Detection]: ...

    @abstractmethod
    def align(self, rgb: np.ndarray, detections: list[Detection]) -> list[AlignedFace]: ...

    @abstractmethod
    def embed(self, faces: list[AlignedFace]) -> np.ndarray:
        """L2-normalised embeddings, ``len(faces) x embedding_size``."""

    @abstractmethod
    def attributes(
        self, rgb: np.ndarray, faces: list[AlignedFace]
    ) -> list[tuple[float | None, float | None]]:
        """(probability of male, age in years) per face; ``None`` where the pack has no model."""


def l2_normalise(features: np.ndarray) -> np.ndarray:
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
