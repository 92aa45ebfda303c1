"""Install-time 8-bit quantization of PP-OCR's text detector (the rapidocr wheel's ONNX file).

PP-OCR detection is about three quarters of the OCR stage's CPU time: 0.16-0.19 s per 720p frame
at 960 px on one thread. onnxruntime's static QDQ quantization (int8 weights per channel,
uint8 activations) runs it in about 0.1 s. The activation ranges are calibrated on synthetic
frames made here with a fixed seed (text of many sizes, fonts and colours over smooth colour
fields, blocks and grain), so the install needs no media and gives the same file every time.
Before it is kept, the quantized detector's text map is compared with the float one's on
frames it was not calibrated on. What it reads against the float detector on real media is
in docs/models.md and ``tests/test_ocr_int8.py``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

OPSET = 17  # the wheel's file is opset 11, where QDQ cannot carry per-channel scales
CALIBRATION_FRAMES = 16
CHECK_FRAMES = 4
THRESHOLD = 0.3  # PP-OCR's DB binarisation threshold (rapidocr's default)
NORMALISATION = [0.5, 0.5, 0.5]  # PP-OCR detection's mean and std (rapidocr's config.yaml)
MAX_DISAGREEMENT = 0.02  # share of pixels where the two text maps fall on different sides
WORDS = [
    *("Copyright", "2024", "BREAKING", "news", "LIVE", "www.example.com", "Tickets", "20"),
    *("EUR", "Opening", "Night", "Chapter", "3", "Sale", "-40%", "Straße", "Ünïcödé"),
    *("12:45", "@framewise", "#1"),
]
FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_PLAIN,
)


def synthetic_frame(rng: np.random.Generator, size: tuple[int, int] = (1280, 720)) -> np.ndarray:
    """A BGR frame with text lines of 5-55 px over a smooth colour field, blocks and grain."""
    width, height = size
    field = cv2.resize(
        rng.uniform(0, 255, (9, 16, 3)).astype(np.float32), size, interpolation=cv2.INTER_CUBIC
    )
    field += rng.normal(0, rng.uniform(4, 26), (height, width, 3)).astype(np.float32)
    frame = np.clip(field, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(2, 7)):
        x, y = int(rng.integers(0, width - 100)), int(rng.integers(0, height - 60))
        corner = (x + int(rng.integers(40, 400)), y + int(rng.integers(20, 300)))
        cv2.rectangle(frame, (x, y), corner, rng.integers(0, 256, 3).tolist(), -1)
    for _ in range(rng.integers(3, 10)):
        text = " ".join(rng.choice(WORDS, rng.integers(1, 6)))
        scale = float(rng.uniform(0.3, 2.5))
        origin = (int(rng.integers(0, width - 200)), int(rng.integers(20, height - 5)))
        font = FONTS[rng.integers(len(FONTS))]
        colour = rng.integers(0, 256, 3).tolist()
        cv2.putText(frame, text, origin, font, scale, colour, max(1, round(scale * 2)), cv2.LINE_AA)
    return frame


def detector_inputs(count: int, seed: int, det_max_side: int) -> list[np.ndarray]:
    """``count`` synthetic frames prepared exactly as rapidocr prepares a frame for its
    detector at ``det_max_side``."""
    from rapidocr.ch_ppocr_det.utils import DetPreProcess

    prepare = DetPreProcess(det_max_side, "max", NORMALISATION, NORMALISATION)
    rng = np.random.default_rng(seed)
    return [prepare(synthetic_frame(rng)) for _ in range(count)]


def quantize_detector(source: Path, target: Path, det_max_side: int) -> Path:
    """Quantize ``source`` into ``target``; refuse (and keep nothing) where the quantized text
    map departs from the float one on frames outside the calibration set."""
    import onnx
    import onnxruntime as ort
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = version_converter.convert_version(onnx.load(str(source)), OPSET)
    name = model.graph.input[0].name
    calibration = detector_inputs(CALIBRATION_FRAMES, 0, det_max_side)

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.inputs = iter([{name: x} for x in calibration])

        def get_next(self) -> dict | None:
            return next(self.inputs, None)

    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".part")
    with tempfile.TemporaryDirectory() as tmp:
        converted, prepared = Path(tmp) / "opset.onnx", Path(tmp) / "prepared.onnx"
        onnx.save(model, str(converted))
        quant_pre_process(str(converted), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(part),
            Frames(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
        )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sessions = [
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for path in (source, part)
    ]
    for x in detector_inputs(CHECK_FRAMES, 1, det_max_side):
        expected, got = (s.run(None, {name: x})[0] > THRESHOLD for s in sessions)
        if (expected != got).mean() > MAX_DISAGREEMENT:
            part.unlink()
            raise RuntimeError("the quantized OCR detector departs from the float one")
    os.replace(part, target)
    log.info("quantized the OCR detector to %s", target)
    return target


def install_int8_detector(out_dir: Path, det_max_side: int, force: bool = False) -> Path:
    """The quantized detector in ``out_dir``, made unless it is already there."""
    from stages.ocr.engine import INT8_DETECTOR, float_detector

    target = out_dir / INT8_DETECTOR
    if target.is_file() and not force:
        return target
    return quantize_detector(float_detector(), target, det_max_side)
