"""PaddleOCR's PP-OCR detection and recognition models on onnxruntime, via rapidocr.

rapidocr implements PP-OCR's pre- and post-processing (DB box extraction, CTC decoding) and
bundles PP-OCR ONNX models. This class is the one place that knows it: frames in, lines out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from framewise.config import Settings


@dataclass
class OcrLine:
    text: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the frame
    language: str | None = None  # ISO 639-1 where the identifier is confident

    def to_payload(self) -> dict:
        return {
            "text": self.text,
            "score": round(self.score, 4),
            "box": [round(v, 5) for v in self.box],
            "language": self.language,
        }

    @classmethod
    def from_payload(cls, payload: dict) -> OcrLine:
        return cls(
            payload["text"], payload["score"], tuple(payload["box"]), payload.get("language")
        )


class PpOcrEngine:
    """``load`` once per worker, ``predict`` per frame."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = None

    def load(self) -> PpOcrEngine:
        from rapidocr import RapidOCR

        s = self.settings
        params: dict = {
            "Global.log_level": "warning",
            "Global.use_cls": s.ocr_angle_classifier,
            "Global.text_score": s.ocr_min_score,
            "Det.limit_type": "max",
            "Det.limit_side_len": s.ocr_det_max_side,
            "EngineConfig.onnxruntime.use_cuda": "CUDAExecutionProvider" in s.onnx_providers,
        }
        for key, value in (
            ("Det.model_path", s.ocr_det_model),
            ("Rec.model_path", s.ocr_rec_model),
            ("Rec.rec_keys_path", s.ocr_rec_keys),
        ):
            if value:
                path = s.model_path(value)
                if not path.is_file():
                    raise FileNotFoundError(f"OCR model file {path} not found")
                params[key] = str(path)
        self.engine = RapidOCR(params=params)
        return self

    def predict(self, frame: np.ndarray) -> list[OcrLine]:
        """Lines read on one RGB frame; recognition runs only on detected boxes."""
        assert self.engine is not None, "call load() first"
        result = self.engine(np.ascontiguousarray(frame[..., ::-1]))
        if result.boxes is None or not result.txts:
            return []
        h, w = frame.shape[:2]
        lines = []
        for box, text, score in zip(result.boxes, result.txts, result.scores, strict=True):
            points = np.asarray(box, dtype=float)
            x0, y0 = points.min(axis=0)
            x1, y1 = points.max(axis=0)
            # A "line" without a single letter is almost always noise (specks, rules).
            if any(ch.isalpha() for ch in text) and score >= self.settings.ocr_min_score:
                lines.append(OcrLine(text.strip(), float(score), (x0 / w, y0 / h, x1 / w, y1 / h)))
        return lines
