"""The OCR stage with the PP-OCR models bundled in rapidocr, without Kafka."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from framewise.config import Settings
from framewise.media import decode_image
from stages.local import image_frame_batch, run_video_stages
from stages.ocr.engine import OcrLine, TabledDetPreProcess
from stages.ocr.language import LanguageIdentifier, dominant_script
from stages.ocr.merge import track_lines, video_results
from stages.ocr.settings import OcrSettings
from stages.ocr.stage import OcrAnalyzer, finalize_image, ocr_samples, on_ocr_grid
from stages.spec import sampled

SETTINGS = Settings(stages=["ocr"])
LATIN = "Alphabetum in mundo hodie frequentissime adhibitum est alphabetum Latinum."


@pytest.fixture(scope="module")
def analyzer() -> OcrAnalyzer:
    return OcrAnalyzer(SETTINGS)


def read_image(analyzer, path) -> list[dict]:
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    batch = image_frame_batch("ocr")
    return finalize_image(analyzer.analyze(image[None], batch), SETTINGS)["ocr_results"]


# Expected texts from ../shared/media/README.md. latin.jpg reads "frequentissime" in the image
# itself; the README's "frequentissie" is a typo carried over from RapidOCR's tests.
@pytest.mark.parametrize(
    ("name", "text", "language"),
    [
        (
            "en_rec.jpg",
            "To facilitate the shot type analysis in videos, we collect MovieShots, a large-scale",
            "en",
        ),
        ("latin.jpg", LATIN, "la"),
        ("issue_170.png", "TEST", "en"),
        ("text_rec.jpg", "韩国小馆", "zh"),
    ],
)
def test_clear_lines_come_back_exactly(analyzer, media, name, text, language):
    results = read_image(analyzer, media / "images" / "ocr" / name)
    assert results == [{"language_code": language, "full_text": text}]


@pytest.mark.parametrize("ink", [(0, 0, 0), (255, 255, 255)], ids=["black", "white"])
def test_text_on_a_transparent_png_is_read(analyzer, media, ink):
    """latin.jpg's dark text as the only opaque pixels of a PNG, in black or in white: the
    image path lays it on the background it stands out from (dropping the alpha channel left
    black text on black)."""
    grey = cv2.imread(str(media / "images" / "ocr" / "latin.jpg"), cv2.IMREAD_GRAYSCALE)
    rgba = np.empty((*grey.shape, 4), np.uint8)
    rgba[..., :3] = ink
    rgba[..., 3] = 255 - grey
    png = cv2.imencode(".png", rgba)[1].tobytes()
    image = decode_image(png, SETTINGS.max_pixels)
    results = finalize_image(analyzer.analyze(image[None], image_frame_batch("ocr")), SETTINGS)
    assert results["ocr_results"] == [
        {
            "language_code": "la",
            "full_text": LATIN,
        }
    ]


def test_many_boxes_in_reading_order(analyzer, media):
    results = read_image(analyzer, media / "images" / "ocr" / "ch_en_num.jpg")
    # The README's 18 boxes come from an older detector; PP-OCRv6 small finds 14 here.
    assert results[0] == {"language_code": "zh", "full_text": "正品促销"}
    everything = "\n".join(r["full_text"] for r in results)
    for text in ("大桶装更划算", "强力去污符合国标", "-40℃深度防冻不结冰", "假一赔十", "5.8起"):
        assert text in everything
    assert all(r["language_code"] == "zh" for r in results)


def test_no_text_gives_nothing(analyzer, media):
    assert read_image(analyzer, media / "images" / "ocr" / "empty_black.jpg") == []
    assert read_image(analyzer, media / "images" / "tags" / "fish.png") == []


def test_the_detector_sees_what_rapidocr_would_give_it(analyzer, media):
    """The tabled preprocessing gives rapidocr's own input bit for bit: a photo, a band of
    it, and a frame smaller than the detector's side."""
    from rapidocr.ch_ppocr_det.utils import DetPreProcess

    detector = analyzer.engine.engine.text_det
    assert isinstance(detector.get_preprocess(), TabledDetPreProcess)
    image = cv2.imread(str(media / "images" / "ocr" / "en_rec.jpg"))
    frame = cv2.resize(image, (1280, 720))
    rapidocr = DetPreProcess(detector.limit_side_len, "max", detector.mean, detector.std)
    for picture in (frame, frame[480:720], image[:200, :300]):
        assert np.array_equal(detector.get_preprocess()(picture), rapidocr(picture))


def test_copyright_lines_span_the_whole_video(test_video):
    result = run_video_stages(test_video, Settings(stages=["scene", "ocr"]))
    texts = {r.full_text: r for r in result.ocr_results}
    assert set(texts) == {"Copyright © 2013 Brandon Castellano", "www.bcastell.com"}, texts
    for r in texts.values():
        assert r.language_code == "en"
        # The line fades in with the first second (frame 0 is black): first OCR sample at 1 s.
        assert r.time_segment.start_seconds <= 1.01
        assert r.time_segment.end_seconds == pytest.approx(24.02, abs=0.05)


def line(text, box=(0.1, 0.8, 0.5, 0.85)) -> OcrLine:
    return OcrLine(text, 0.9, box)


def test_variants_of_one_line_do_not_split_it_and_a_gap_does():
    frames = [
        (0.0, [line("Copyright © 2013 Brandon")]),
        (1.0, [line("Copyright@2013 Brandon")]),
        (2.0, [line("Copyright © 2013 Brandon")]),
        (9.0, [line("Copyright © 2013 Brandon")]),
    ]
    results = video_results(track_lines(frames, max_gap=2.5), interval=1.0, duration=10.0)
    assert results == [
        ("Copyright © 2013 Brandon", 0.0, 3.0, "en"),
        ("Copyright © 2013 Brandon", 9.0, 10.0, "en"),
    ]


def test_stacked_lines_are_joined_in_reading_order():
    top, bottom = (0.1, 0.10, 0.6, 0.15), (0.1, 0.16, 0.5, 0.21)
    frames = [(t, [line("second line", bottom), line("first line", top)]) for t in (0.0, 1.0)]
    results = video_results(track_lines(frames, max_gap=2.5), interval=1.0, duration=5.0)
    assert results == [("first line\nsecond line", 0.0, 2.0, "en")]


def test_language_falls_back_to_the_script_when_unsure():
    ident = LanguageIdentifier(OcrSettings().languages, 0.5)
    assert ident.identify("Славянские языки — большая языковая семья.") == "ru"
    assert ident.identify("www.bcastell.com") == "en"  # unsure: Latin script
    assert ident.identify("カタカナ") == "ja"
    assert dominant_script("한국어") == "HANGUL"


def test_ocr_samples_its_own_rate_from_detail_frames():
    detail = [round(k * 0.5005, 4) for k in range(8)]  # 2 fps from a 29.97 fps video
    assert [t for t in detail if on_ocr_grid(t, 1.0, 2.0)] == [0.0, 1.001, 2.002, 3.003]


def test_the_worker_hands_ocr_only_its_grid_frames_and_the_answer_is_the_same(media):
    """The worker decodes only the frames ``ocr_samples`` picks; the payload is the one the
    whole batch gives."""
    picture = cv2.cvtColor(cv2.imread(str(media / "images" / "ocr" / "en.jpg")), cv2.COLOR_BGR2RGB)
    frames = np.stack([picture] * 5)
    batch = image_frame_batch("ocr").model_copy(
        update={
            "media_type": "video",
            "context_frames": 1,
            "frame_indices": [0, 15, 30, 45, 60],
            "timestamps": [0.0, 0.5005, 1.001, 1.5015, 2.002],
            "fps": 2.0,
        }
    )
    settings = Settings()
    wanted = ocr_samples(batch, settings)
    assert wanted == [2, 4]  # the context frame and the half seconds are not read
    whole = OcrAnalyzer(settings).analyze(frames, batch)
    part = OcrAnalyzer(settings).analyze(frames[wanted], sampled(batch, wanted))
    assert part == whole and len(whole["frames"]) == 2
