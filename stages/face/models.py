"""insightface's model zoo on onnxruntime: one class for a face model pack.

A pack is a directory in insightface's layout (``buffalo_l``: ``det_10g.onnx``,
``w600k_r50.onnx``, ``genderage.onnx``, …). insightface's router recognises each file by its
signature (SCRFD detector, 112x112 ArcFace recogniser, 96x96 genderage attribute model); this
class loads them once, detects, aligns with the 5 keypoints, and batches the face crops.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Detection:
    bbox: np.ndarray  # x0, y0, x1, y1 in pixels
    keypoints: np.ndarray  # 5 x 2
    score: float


class FacePackMissing(RuntimeError):
    pass


def is_yunet(path: Path) -> bool:
    """OpenCV zoo's YuNet detector (outputs ``cls_*``/``obj_*``/``bbox_*``/``kps_*``)."""
    import onnx

    outputs = [o.name for o in onnx.load(str(path), load_external_data=False).graph.output]
    return any(name.startswith("obj_") for name in outputs)


class FaceModelPack:
    def __init__(
        self,
        pack_dir: Path,
        providers: list[str],
        detector: str | None = None,
        det_size: int = 640,
        det_threshold: float = 0.5,
        batch_size: int = 32,
    ) -> None:
        self.pack_dir = pack_dir
        self.providers = providers
        self.detector_name = detector
        self.det_size = det_size
        self.det_threshold = det_threshold
        self.batch_size = batch_size
        self.detector = None
        self.recognizer = None
        self.genderage = None

    def load(self) -> FaceModelPack:
        from insightface.model_zoo import get_model

        if not self.pack_dir.is_dir():
            raise FacePackMissing(
                f"face model pack {self.pack_dir} not found (FRAMEWISE_MODELS_DIR, "
                "FRAMEWISE_FACE_PACK; `framewise models` lists what is installed)"
            )
        detectors = {}
        for path in sorted(self.pack_dir.glob("*.onnx")):
            if is_yunet(path):  # insightface's router would take it for SCRFD
                log.info("skipping %s: YuNet is not an insightface model", path.name)
                continue
            model = get_model(str(path), providers=self.providers)
            task = getattr(model, "taskname", None)
            if task == "detection":
                detectors[path.name] = model
            elif task == "recognition" and self.recognizer is None:
                self.recognizer = model
            elif task == "genderage" and self.genderage is None:
                self.genderage = model
        if not detectors:
            raise FacePackMissing(f"no face detector in {self.pack_dir}")
        if self.detector_name:
            if self.detector_name not in detectors:
                raise FacePackMissing(f"{self.detector_name} is not in {self.pack_dir}")
            self.detector = detectors[self.detector_name]
        else:  # the largest detector is the most accurate one (det_10g > det_2.5g > det_500m)
            name = max(detectors, key=lambda n: (self.pack_dir / n).stat().st_size)
            self.detector = detectors[name]
        self.detector.prepare(
            ctx_id=0, det_thresh=self.det_threshold, input_size=(self.det_size, self.det_size)
        )
        log.info(
            "face pack %s: detector %s, recognition %s, genderage %s",
            self.pack_dir,
            Path(self.detector.model_file).name,
            self.recognizer and Path(self.recognizer.model_file).name,
            self.genderage and Path(self.genderage.model_file).name,
        )
        return self

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        assert self.detector is not None, "call load() first"
        boxes, keypoints = self.detector.detect(bgr, input_size=(self.det_size, self.det_size))
        return [
            Detection(b[:4].astype(float), k.astype(float), float(b[4]))
            for b, k in zip(boxes, keypoints, strict=True)
        ]

    @staticmethod
    def align(bgr: np.ndarray, detection: Detection, size: int = 112) -> np.ndarray:
        from insightface.utils import face_align

        return face_align.norm_crop(bgr, landmark=detection.keypoints, image_size=size)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """L2-normalised embeddings of aligned crops, in batches."""
        if self.recognizer is None:
            raise FacePackMissing(f"no recognition model (ArcFace) in {self.pack_dir}")
        out = [
            self._run(self.recognizer, crops[i : i + self.batch_size])
            for i in range(0, len(crops), self.batch_size)
        ]
        features = np.concatenate(out) if out else np.zeros((0, 512), np.float32)
        return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)

    def gender_age(self, bgr: np.ndarray, detections: list[Detection]) -> list[tuple[float, float]]:
        """(probability of male, age in years) per face; empty without the attribute model."""
        if self.genderage is None or not detections:
            return []
        from insightface.utils import face_align

        size = self.genderage.input_size[0]
        crops = []
        for d in detections:
            w, h = d.bbox[2] - d.bbox[0], d.bbox[3] - d.bbox[1]
            center = ((d.bbox[0] + d.bbox[2]) / 2, (d.bbox[1] + d.bbox[3]) / 2)
            crops.append(face_align.transform(bgr, center, size, size / (max(w, h) * 1.5), 0)[0])
        preds = np.concatenate(
            [
                self._run(self.genderage, crops[i : i + self.batch_size])
                for i in range(0, len(crops), self.batch_size)
            ]
        )
        logits = preds[:, :2] - preds[:, :2].max(axis=1, keepdims=True)
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return [(float(pm), float(age * 100)) for pm, age in zip(p[:, 1], preds[:, 2], strict=True)]

    @staticmethod
    def _run(model, crops: list[np.ndarray]) -> np.ndarray:
        """One session call for a batch of crops, with the model's own normalisation; a model
        with a fixed batch of 1 is called crop by crop."""
        size = tuple(crops[0].shape[:2][::-1])
        blob = cv2.dnn.blobFromImages(
            crops, 1.0 / model.input_std, size, (model.input_mean,) * 3, swapRB=True
        )
        fixed = model.session.get_inputs()[0].shape[0]
        name = model.session.get_inputs()[0].name
        if isinstance(fixed, int) and fixed == 1 and len(crops) > 1:
            return np.concatenate([model.session.run(None, {name: b[None]})[0] for b in blob])
        return model.session.run(None, {name: blob})[0]
