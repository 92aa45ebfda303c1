"""PaddleOCR's PP-OCR detection and recognition models on onnxruntime, via rapidocr.

rapidocr implements PP-OCR's pre- and post-processing (DB box extraction, CTC decoding) and
bundles PP-OCR ONNX models. This class is the one place that knows it: frames in, lines out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from framewise.config import Settings
from framewise.inference import InferenceModel, ModelCard, require_file
from stages.ocr.settings import OcrSettings


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


WHEEL_DETECTOR = "PP-OCRv6_det_small.onnx"  # in rapidocr's models folder
INT8_DETECTOR = "ocr/PP-OCRv6_det_small.int8.onnx"  # in FRAMEWISE_BUILTIN_MODELS_DIR


def float_detector() -> Path:
    import rapidocr

    return Path(rapidocr.__file__).parent / "models" / WHEEL_DETECTOR


def runs_int8_detector(settings: Settings) -> bool:
    """The wheel's detector as quantized at install (``stages/ocr/quantize.py``): where no
    detector is configured and ``FRAMEWISE_MODEL_PRECISION`` asks for 8 bits."""
    return settings.runs_int8 and not settings.group(OcrSettings).det_model


def detector_file(settings: Settings) -> Path:
    """The detector the stage runs: ``FRAMEWISE_OCR_DET_MODEL``, the 8-bit one, or the
    wheel's float one."""
    det_model = settings.group(OcrSettings).det_model
    if det_model:
        return settings.model_path(det_model)
    if runs_int8_detector(settings):
        return settings.builtin_models_dir / INT8_DETECTOR
    return float_detector()


class PpOcrEngine(InferenceModel):
    """``load`` once per worker, ``predict`` per frame."""

    card = ModelCard(
        role="OCR",
        name="PaddleOCR PP-OCRv6 small detection and recognition (ONNX, in the rapidocr wheel)",
        license="Apache-2.0",
        source="PyPI rapidocr (or FRAMEWISE_OCR_DET_MODEL / FRAMEWISE_OCR_REC_MODEL)",
        commercial_use=True,
    )
    int8_card = replace(
        card,
        name="PaddleOCR PP-OCRv6 small detection (8-bit, quantized at install) and recognition "
        "(ONNX, in the rapidocr wheel)",
        source="PyPI rapidocr, detector quantized by `framewise models install` (or "
        "FRAMEWISE_OCR_DET_MODEL / FRAMEWISE_OCR_REC_MODEL)",
    )

    @classmethod
    def card_for(cls, settings: Settings) -> ModelCard:
        """What `framewise models` says of the detector that ``settings`` run."""
        return cls.int8_card if runs_int8_detector(settings) else cls.card

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.min_score = settings.group(OcrSettings).min_score
        self.engine = None

    def _load(self) -> None:
        from rapidocr import RapidOCR

        self.engine = RapidOCR(params=rapidocr_params(self.settings))
        # rapidocr opens its detector and recognizer on first use: read one rendered word now,
        # so that a worker's first batch does not pay for it and a broken model fails at load.
        word = np.full((64, 240, 3), 255, np.uint8)
        cv2.putText(word, "Framewise", (8, 44), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2)
        self.engine(word)
        detector = self.engine.text_det
        prepare = TabledDetPreProcess(
            detector.limit_side_len, detector.limit_type, detector.mean, detector.std
        )
        detector.get_preprocess = lambda: prepare

    def _predict(self, frame: np.ndarray) -> list[OcrLine]:
        """Lines read on one RGB frame: every detected box recognized."""
        detection = self.detect(frame)
        return self.lines(detection, self.recognize(detection.crops))

    def detect(self, frame: np.ndarray) -> Detection:
        """Where the detector finds text on one RGB frame, as rapidocr's own pipeline would
        (its resizing, padding and crops); the caller may then recognize only some crops."""
        from rapidocr.main import RapidOCRError
        from rapidocr.utils.process_img import map_boxes_to_original

        engine = self.engine
        image = engine.load_img(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))  # 5x a reversed copy
        resized, op_record = engine.preprocess_img(image)
        try:
            crops, detected = engine.detect_and_crop(resized, op_record)
        except RapidOCRError:  # no text detected
            return Detection([], [], frame.shape[:2])
        if engine.use_cls:
            crops, _ = engine.cls_and_rotate(crops)
        quads = map_boxes_to_original(detected.boxes, op_record, *frame.shape[:2])
        boxes = [(*quad.min(axis=0), *quad.max(axis=0)) for quad in np.asarray(quads, float)]
        return Detection(boxes, crops, frame.shape[:2])

    def recognize(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """The text and score of each crop."""
        if not crops:
            return []
        recognized = self.engine.recognize_txt(crops)
        return list(zip(recognized.txts, recognized.scores, strict=True))

    def lines(self, detection: Detection, readings: list[tuple[str, float]]) -> list[OcrLine]:
        """The lines worth keeping of a detection and the readings of its boxes: rapidocr's
        filters (empty text, score floor) and one of ours."""
        h, w = detection.shape
        lines = []
        for (x0, y0, x1, y1), (text, score) in zip(detection.boxes, readings, strict=True):
            # A "line" without a single letter is almost always noise (specks, rules).
            if any(ch.isalpha() for ch in text) and score >= self.min_score:
                lines.append(OcrLine(text.strip(), float(score), (x0 / w, y0 / h, x1 / w, y1 / h)))
        return lines


@dataclass
class Detection:
    """The text boxes found in one image (x0, y0, x1, y1 in its pixels), the crops of them
    the recognizer reads, and the image's (height, width)."""

    boxes: list[tuple[float, float, float, float]]
    crops: list[np.ndarray]
    shape: tuple[int, int]


class TabledDetPreProcess:
    """rapidocr's detector input (``DetPreProcess``: resized, ``(x * scale - mean) / std`` per
    channel, channels first), bit for bit, from a table of that formula for each of the 256
    values of each channel rather than float64 arithmetic on every pixel: 2.4 ms instead of
    9 ms for a 720p frame (``tests/test_ocr_stage.py`` compares the two)."""

    def __init__(self, limit_side_len: int, limit_type: str, mean, std) -> None:
        from rapidocr.ch_ppocr_det.utils import DetPreProcess

        self.rapidocr = DetPreProcess(limit_side_len, limit_type, mean, std)
        values = np.arange(256, dtype=np.uint8)[:, None].repeat(3, axis=1)[None]
        self.table = self.rapidocr.normalize(values)[0].T.astype(np.float32)  # (3, 256)

    def __call__(self, img: np.ndarray) -> np.ndarray | None:
        resized = self.rapidocr.resize(img)
        if resized is None:
            return None
        out = np.empty((1, 3, *resized.shape[:2]), np.float32)
        for channel in range(3):
            np.take(self.table[channel], resized[..., channel], out=out[0, channel])
        return out


def rapidocr_params(settings: Settings) -> dict:
    """rapidocr's configuration from ours: detector size, score floor, models, provider and
    threads (the benchmark's direct baseline uses the same)."""
    ocr = settings.group(OcrSettings)
    params: dict = {
        "Global.log_level": "warning",
        "Global.use_cls": ocr.angle_classifier,
        "Global.text_score": ocr.min_score,
        "Det.limit_type": "max",
        "Det.limit_side_len": ocr.det_max_side,
        # One line per recognizer call, at its own width: batched, every line is padded to the
        # widest of its batch (a 16-letter URL to a 35-letter copyright line). Reading them
        # one by one took 22% less OCR time with the same texts on every test image and frame.
        "Rec.rec_batch_num": 1,
        "EngineConfig.onnxruntime.use_cuda": "CUDAExecutionProvider" in settings.onnx_providers,
        "EngineConfig.onnxruntime.intra_op_num_threads": settings.onnx_threads or -1,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1 if settings.onnx_threads else -1,
        # onnxruntime's own arena rather than malloc's heaps for the detector's and
        # recognizer's tensors: the worker's memory then stays at what its first batches
        # needed (72 s -> 9.6 min of video: 1.01x, against 1.09-1.13x through malloc)
        "EngineConfig.onnxruntime.enable_cpu_mem_arena": True,
    }
    setting = "FRAMEWISE_OCR_DET_MODEL"
    if runs_int8_detector(settings):
        setting = "FRAMEWISE_MODEL_PRECISION=fp32, or run `framewise models install`"
    params["Det.model_path"] = str(require_file(detector_file(settings), setting))
    for key, value, setting in (
        ("Rec.model_path", ocr.rec_model, "FRAMEWISE_OCR_REC_MODEL"),
        ("Rec.rec_keys_path", ocr.rec_keys, "FRAMEWISE_OCR_REC_KEYS"),
    ):
        if value:
            params[key] = str(require_file(settings.model_path(value), setting))
    return params
