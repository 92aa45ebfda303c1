"""The 8-bit PP-OCR detector that `framewise models install` quantizes reads what the float
detector of the rapidocr wheel reads (stages/ocr/quantize.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from framewise.config import Settings
from framewise.edits import photos
from stages.local import image_frame_batch, run_video_stages
from stages.ocr import quantize
from stages.ocr.engine import INT8_DETECTOR, detector_file, float_detector
from stages.ocr.quantize import detector_inputs, quantize_detector
from stages.ocr.settings import OcrSettings
from stages.ocr.stage import OcrAnalyzer

INT8 = Settings(stages=["ocr"])
FLOAT = Settings(stages=["ocr"], model_precision="fp32")


@pytest.fixture(scope="module")
def readers() -> dict[str, OcrAnalyzer]:
    if not detector_file(INT8).is_file():
        pytest.skip(f"{detector_file(INT8)} missing: run `framewise models install`")
    return {"int8": OcrAnalyzer(INT8), "float": OcrAnalyzer(FLOAT)}


def lines(analyzer: OcrAnalyzer, rgb: np.ndarray) -> list[str]:
    payload = analyzer.analyze(rgb[None], image_frame_batch("ocr"))
    return [line["text"] for frame in payload["frames"] for line in frame["lines"]]


def test_the_default_on_the_cpu_is_the_installed_8_bit_file_and_cuda_keeps_float():
    assert Settings().runs_int8
    assert detector_file(Settings()) == Settings().builtin_models_dir / INT8_DETECTOR
    on_cuda = Settings(onnx_providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert detector_file(on_cuda) == float_detector()
    assert detector_file(FLOAT) == float_detector()
    configured = Settings().with_groups(OcrSettings(det_model="mine/det.onnx"))
    assert detector_file(configured) == Settings().model_path("mine/det.onnx")


def test_the_same_lines_on_every_test_image(readers, media):
    different = {}
    for path in sorted((media / "images" / "ocr").iterdir()):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        read = {name: lines(reader, rgb) for name, reader in readers.items()}
        assert len(read["int8"]) == len(read["float"]), (path.name, read)
        different[path.name] = [(a, b) for a, b in zip(*read.values(), strict=True) if a != b]
    # On the dense advertisement, two lines the float detector misreads too: a stacked
    # "直击底价" (read "直素" by the float detector) and a full-width "￥".
    assert len(different.pop("ch_en_num.jpg")) <= 2
    assert not any(different.values()), different


@pytest.mark.parametrize("cap_height", [8, 10, 12, 16])
def test_small_captions_over_a_photo_are_read_alike(readers, media, cap_height):
    frame = cv2.resize(photos(media)[4], (1280, 720))
    scale = cap_height / 22  # Hershey's cap height at scale 1 is about 22 px
    for k, y in enumerate((100, 400, 690)):
        for font, x in ((cv2.FONT_HERSHEY_SIMPLEX, 40), (cv2.FONT_HERSHEY_DUPLEX, 660)):
            text = f"Caption {cap_height}px line {k} BREAKING"
            thickness = max(1, round(scale * 2))
            cv2.putText(frame, text, (x, y), font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    read = {name: lines(reader, frame) for name, reader in readers.items()}
    assert read["int8"] == read["float"]
    assert len(read["int8"]) == 6


def test_testvideo_gives_the_same_ocr_results(readers, test_video):
    results = [run_video_stages(test_video, s).ocr_results for s in (INT8, FLOAT)]
    assert results[0] == results[1]
    assert {r.full_text for r in results[0]} == {
        "Copyright © 2013 Brandon Castellano",
        "www.bcastell.com",
    }


def test_quantizing_is_repeatable_and_checked_against_the_float_detector(
    readers, tmp_path, monkeypatch
):
    """The same calibration gives the same file; with no disagreement allowed, the check
    refuses the result and leaves no file behind."""
    again = quantize_detector(float_detector(), tmp_path / "det.onnx", 960)
    assert again.read_bytes() == detector_file(INT8).read_bytes()
    first, second = detector_inputs(2, 0, 960), detector_inputs(2, 0, 960)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    monkeypatch.setattr(quantize, "MAX_DISAGREEMENT", -1.0)  # read when the check runs
    with pytest.raises(RuntimeError, match="departs"):
        quantize_detector(float_detector(), tmp_path / "refused.onnx", 960)
    assert not list(tmp_path.glob("refused*"))


def test_a_missing_8_bit_file_names_the_install_command(tmp_path):
    settings = Settings(builtin_models_dir=tmp_path)
    with pytest.raises(Exception, match="framewise models install"):
        OcrAnalyzer(settings)


def test_models_lists_the_file_the_stage_runs():
    from stages.ocr.stage import OCR

    ((card, path),) = OCR.models(INT8)
    assert path == detector_file(INT8) and path.name.endswith(".int8.onnx")
    assert Path(path).parent.name == "ocr" and "8-bit" in card.name
    ((card, path),) = OCR.models(FLOAT)
    assert path == float_detector() and "8-bit" not in card.name
