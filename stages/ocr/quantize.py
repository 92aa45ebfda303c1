"""Install-time 8-bit quantization of PP-OCR's text detector (the rapidocr wheel's ONNX file).

PP-OCR detection is about three quarters of the OCR stage's CPU time: 0.16-0.19 s per 720p
frame at 960 px on one thread; quantized (``framewise/quantize.py``) it takes about 0.1 s. The
activation ranges are calibrated on synthetic frames made here with a fixed seed (text of many
sizes, fonts and colours over smooth colour fields, blocks and grain). Before it is kept, the
quantized detector's text map is compared with the float one's on frames it was not
calibrated on. What it reads against the float detector on real media is
in docs/models.md and ``tests/test_ocr_int8.py``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from framewise.quantize import quantize_model

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
    """Quantize ``source`` into ``target``; refuse (and keep nothing) where the text map falls
    on the other side of DB's threshold than the float one's on more than
    ``MAX_DISAGREEMENT`` of the pixels of frames outside the calibration set."""

    def agrees(expected: np.ndarray, got: np.ndarray) -> bool:
        return bool(((expected > THRESHOLD) != (got > THRESHOLD)).mean() <= MAX_DISAGREEMENT)

    return quantize_model(
        source,
        target,
        detector_inputs(CALIBRATION_FRAMES, 0, det_max_side),
        detector_inputs(CHECK_FRAMES, 1, det_max_side),
        agrees,
        "OCR detector",
    )


def install_int8_detector(out_dir: Path, det_max_side: int, force: bool = False) -> Path:
    """The quantized detector in ``out_dir``, made unless it is already there."""
    from stages.ocr.engine import INT8_DETECTOR, float_detector

    target = out_dir / INT8_DETECTOR
    if target.is_file() and not force:
        return target
    return quantize_detector(float_detector(), target, det_max_side)
