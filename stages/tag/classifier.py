"""An ONNX image classifier and the roll-up of its classes into everyday tags.

Everything model-specific (input size, channel order, scaling, mean/std, whether the output is
already a probability) is configuration, so any ImageNet-style classifier can be dropped in. A
zero-shot image-text model fits the same :class:`Tagger` interface: frames in, tag
probabilities out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from framewise.config import Settings
from framewise.onnx import create_session

BUILTIN_TAXONOMY = Path(__file__).with_name("taxonomy.json")


class Tagger(Protocol):
    def predict(self, frames: np.ndarray) -> list[dict[str, float]]:
        """Tag probabilities for each RGB frame."""
        ...


def parse_classes(spec: list[str]) -> list[int]:
    """``["0-6", "389"]`` -> ``[0, 1, …, 6, 389]``."""
    out: list[int] = []
    for item in spec:
        lo, _, hi = str(item).partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


@dataclass
class Taxonomy:
    """Maps class indices to tags; a tag's probability is the sum over its classes, which is
    right because a softmax's classes are mutually exclusive."""

    class_to_tag: list[str]

    @classmethod
    def load(cls, labels_path: Path, taxonomy_path: Path | None) -> Taxonomy:
        labels: dict[int, str] = {}
        for line in labels_path.read_text().splitlines():
            index, _, label = line.partition(",")
            if index.strip().isdigit():
                labels[int(index)] = label.split(",")[0].strip()
        mapping = json.loads((taxonomy_path or BUILTIN_TAXONOMY).read_text())["tags"]
        class_to_tag = [labels.get(i, f"class {i}") for i in range(max(labels) + 1)]
        for tag, classes in mapping.items():
            for index in parse_classes(classes):
                if index < len(class_to_tag):
                    class_to_tag[index] = tag
        return cls(class_to_tag)

    def roll_up(self, probabilities: np.ndarray, floor: float = 0.0) -> dict[str, float]:
        tags: dict[str, float] = {}
        for index in np.flatnonzero(probabilities > 0):
            tag = self.class_to_tag[index]
            tags[tag] = tags.get(tag, 0.0) + float(probabilities[index])
        return {t: round(min(p, 1.0), 6) for t, p in tags.items() if p >= floor}


class OnnxClassifier:
    """``load`` once per worker, ``predict`` per batch of frames."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.session = None
        self.taxonomy: Taxonomy | None = None

    def load(self) -> OnnxClassifier:
        s = self.settings
        self.session = create_session(
            s.model_path(s.tag_model), s.onnx_providers, "FRAMEWISE_TAG_MODEL"
        )
        self.taxonomy = Taxonomy.load(s.model_path(s.tag_labels), s.tag_taxonomy)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_dtype = np.float16 if "float16" in model_input.type else np.float32
        self.fixed_batch = model_input.shape[0] if isinstance(model_input.shape[0], int) else None
        return self

    def preprocess(self, frame: np.ndarray) -> np.ndarray:
        """Resize the short side to the input size, centre-crop, scale, normalise, NCHW."""
        s = self.settings
        size = s.tag_input_size
        h, w = frame.shape[:2]
        scale = size / min(h, w)
        resized = cv2.resize(
            frame,
            (max(size, round(w * scale)), max(size, round(h * scale))),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
        top = (resized.shape[0] - size) // 2
        left = (resized.shape[1] - size) // 2
        crop = resized[top : top + size, left : left + size]
        if s.tag_channel_order == "BGR":
            crop = crop[..., ::-1]
        x = crop.astype(np.float32) * s.tag_pixel_scale
        x = (x - np.asarray(s.tag_mean, np.float32)) / np.asarray(s.tag_std, np.float32)
        return x.transpose(2, 0, 1)

    def class_probabilities(self, frames: np.ndarray) -> np.ndarray:
        assert self.session is not None, "call load() first"
        inputs = np.stack([self.preprocess(f) for f in frames]).astype(self.input_dtype)
        chunk = self.fixed_batch or len(inputs)
        outputs = [
            self.session.run(None, {self.input_name: inputs[i : i + chunk]})[0]
            for i in range(0, len(inputs), chunk)
        ]
        scores = np.concatenate(outputs).reshape(len(frames), -1).astype(np.float64)
        if self.settings.tag_output == "logits":
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
        return scores

    def predict(self, frames: np.ndarray, floor: float = 0.001) -> list[dict[str, float]]:
        assert self.taxonomy is not None
        return [self.taxonomy.roll_up(p, floor) for p in self.class_probabilities(frames)]
