"""insightface's model zoo on onnxruntime, as a :class:`FacePack` (``FRAMEWISE_FACE_PACK=
insightface``).

A pack is a directory in insightface's layout (``buffalo_l``: ``det_10g.onnx``,
``w600k_r50.onnx``, ``genderage.onnx``, …). insightface's router recognises each file by its
signature (SCRFD detector, 112x112 ArcFace recogniser, 96x96 genderage attribute model); this
class loads them once, detects, aligns with the 5 keypoints, and batches the face crops.
insightface's pretrained packs are for non-commercial research use only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Self

import cv2
import numpy as np

from framewise.config import Settings
from framewise.inference import ModelCard, ModelMissing
from framewise.onnx import session_options
from stages.face.pack import AlignedFace, Detection, FacePack, PackThresholds, l2_normalise
from stages.face.settings import FaceSettings

log = logging.getLogger(__name__)

# insightface's recognition model names: a pack with one of them can run the face stage.
RECOGNIZER_NAMES = ("w600k_*.onnx", "glintr100.onnx", "*arcface*.onnx")
PACK_SETTING = "FRAMEWISE_MODELS_DIR and FRAMEWISE_FACE_INSIGHTFACE_DIR"


def is_yunet(path: Path) -> bool:
    """OpenCV zoo's YuNet detector (outputs ``cls_*``/``obj_*``/``bbox_*``/``kps_*``)."""
    import onnx

    outputs = [o.name for o in onnx.load(str(path), load_external_data=False).graph.output]
    return any(name.startswith("obj_") for name in outputs)


def installed(pack_dir: Path) -> bool:
    return any(any(pack_dir.glob(pattern)) for pattern in RECOGNIZER_NAMES)


class InsightFacePack(FacePack):
    name = "insightface"
    embedding_size = 512
    thresholds = PackThresholds(cluster=0.45, allowlist=0.5, gender_confidence=0.7)

    def __init__(self, settings: Settings) -> None:
        face = settings.group(FaceSettings)
        self.pack_dir = settings.model_path(face.insightface_dir)
        self.settings = settings
        self.detector_name = face.detector
        self.det_size = face.det_size
        self.det_threshold = face.det_threshold
        self.batch_size = face.batch_size
        self.detector = None
        self.recognizer = None
        self.genderage = None

    def models(self) -> list[tuple[ModelCard, Path]]:
        card = ModelCard(
            role="face pack",
            name="insightface pack (SCRFD, ArcFace, genderage)",
            license="insightface pretrained models: non-commercial research use only",
            source="FRAMEWISE_MODELS_DIR/FRAMEWISE_FACE_INSIGHTFACE_DIR (`framewise models "
            "fetch buffalo_l`)",
            commercial_use=False,
        )
        return [(card, self.pack_dir)]

    def load(self) -> Self:
        from insightface.model_zoo import get_model

        if not self.pack_dir.is_dir():
            raise ModelMissing(self.pack_dir, PACK_SETTING)
        detectors = {}
        for path in sorted(self.pack_dir.glob("*.onnx")):
            if is_yunet(path):  # insightface's router would take it for SCRFD
                log.info("skipping %s: YuNet is not an insightface model", path.name)
                continue
            model = get_model(
                str(path),
                providers=self.settings.onnx_providers,
                sess_options=session_options(self.settings),
            )
            task = getattr(model, "taskname", None)
            if task == "detection":
                detectors[path.name] = model
            elif task == "recognition" and self.recognizer is None:
                self.recognizer = model
            elif task == "genderage" and self.genderage is None:
                self.genderage = model
        if not detectors:
            raise ModelMissing(self.pack_dir / "det_*.onnx", PACK_SETTING)
        if self.recognizer is None:
            raise ModelMissing(self.pack_dir / "w600k_*.onnx", PACK_SETTING)
        if self.detector_name:
            if self.detector_name not in detectors:
                raise ModelMissing(self.pack_dir / self.detector_name, "FRAMEWISE_FACE_DETECTOR")
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
            Path(self.recognizer.model_file).name,
            self.genderage and Path(self.genderage.model_file).name,
        )
        return self

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        assert self.detector is not None, "call load() first"
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        boxes, keypoints = self.detector.detect(bgr, input_size=(self.det_size, self.det_size))
        return [
            Detection(b[:4].astype(float), float(b[4]), k.astype(float))
            for b, k in zip(boxes, keypoints, strict=True)
        ]

    def align(self, rgb: np.ndarray, detections: list[Detection]) -> list[AlignedFace]:
        from insightface.utils import face_align

        return [
            AlignedFace(d, face_align.norm_crop(rgb, landmark=d.keypoints, image_size=112), None)
            for d in detections
        ]

    def embed(self, faces: list[AlignedFace]) -> np.ndarray:
        """L2-normalised ArcFace embeddings of the aligned crops, in batches."""
        crops = [face.chip for face in faces]
        out = [
            self._run(self.recognizer, crops[i : i + self.batch_size])
            for i in range(0, len(crops), self.batch_size)
        ]
        return l2_normalise(np.concatenate(out) if out else np.zeros((0, 512), np.float32))

    def attributes(
        self, rgb: np.ndarray, faces: list[AlignedFace]
    ) -> list[tuple[float | None, float | None]]:
        """(probability of male, age in years) per face; ``None`` without the attribute model."""
        if self.genderage is None or not faces:
            return [(None, None)] * len(faces)
        from insightface.utils import face_align

        size = self.genderage.input_size[0]
        crops = []
        for face in faces:
            x0, y0, x1, y1 = face.detection.bbox
            center = ((x0 + x1) / 2, (y0 + y1) / 2)
            scale = size / (max(x1 - x0, y1 - y0) * 1.5)
            crops.append(face_align.transform(rgb, center, size, scale, 0)[0])
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
        """One session call for a batch of RGB crops (the networks take RGB, as insightface's
        own swapRB on its BGR crops gives them), with the model's own normalisation; a model
        with a fixed batch of 1 is called crop by crop."""
        size = tuple(crops[0].shape[:2][::-1])
        blob = cv2.dnn.blobFromImages(
            crops, 1.0 / model.input_std, size, (model.input_mean,) * 3, swapRB=False
        )
        fixed = model.session.get_inputs()[0].shape[0]
        name = model.session.get_inputs()[0].name
        if isinstance(fixed, int) and fixed == 1 and len(crops) > 1:
            return np.concatenate([model.session.run(None, {name: b[None]})[0] for b in blob])
        return model.session.run(None, {name: blob})[0]
