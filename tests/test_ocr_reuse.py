"""OCR reads only where the picture changed: the same results as reading every sampled frame
whole, for far less work, and text that appears, changes or disappears is still caught."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from framewise.config import Settings
from framewise.edits import film, photos
from framewise.media import decode_video_segment
from framewise.picture_change import GRID, thumbnail
from framewise.synthetic import mpeg4_writer
from stages.local import frame_message, stage_context
from stages.ocr.engine import OcrLine
from stages.ocr.reuse import LineMemory, TextMemory, bands, textured_rows
from stages.ocr.settings import OcrSettings
from stages.ocr.stage import OcrAnalyzer, finalize_video
from stages.profiles import profiles

SIZE = (960, 540)
FPS = 10


def read_video(path: Path, reuse: bool) -> tuple[list[dict], OcrAnalyzer]:
    settings = Settings(stages=["ocr"]).with_groups(OcrSettings(reuse_unchanged=reuse))
    analyzer = OcrAnalyzer(settings)
    context = stage_context(path, "ocr", analyzer, settings)
    return finalize_video(context, settings)["ocr_results"], analyzer


def test_testvideo_reads_the_same_text_for_a_quarter_of_the_work(test_video):
    whole, everything = read_video(test_video, reuse=False)
    results, changed_only = read_video(test_video, reuse=True)
    assert results == whole
    assert changed_only.frames_seen == everything.frames_seen == 24
    assert changed_only.frames_read * 4 <= everything.frames_read, changed_only.frames_read
    assert changed_only.lines_recognized * 3 <= everything.lines_recognized


def test_segments_arriving_interleaved_read_as_much_as_in_order(test_video):
    """A job's segments are decoded at once, so their batches reach the stage interleaved;
    each segment compares with its own previous frame, so the order changes nothing."""
    settings = Settings(stages=["ocr"])
    profile = profiles(settings)["detail"]
    segments = [
        [
            (b.frames, frame_message(b, ["ocr"]).model_copy(update={"segment_index": k}))
            for b in decode_video_segment(test_video, [profile], start, end, 1 << 30)
        ]
        for k, (start, end) in enumerate([(0.0, 12.0), (12.0, 24.0)])
    ]
    in_order = [batch for segment in segments for batch in segment]
    interleaved = [b for pair in zip(*segments, strict=False) for b in pair]
    interleaved += in_order[len(interleaved) :] if len(segments[0]) > len(segments[1]) else []
    assert sorted(id(b) for b in interleaved) == sorted(id(b) for b in in_order)
    readings = []
    for batches in (in_order, interleaved):
        analyzer = OcrAnalyzer(settings)
        frames = sorted(
            (f["t"], [line["text"] for line in f["lines"]])
            for frames, batch in batches
            for f in analyzer.analyze(frames, batch)["frames"]
        )
        readings.append((frames, analyzer.frames_read))
    assert readings[0] == readings[1]
    assert readings[0][1] * 2 < 24  # still far less than reading every sampled frame


def caption(frame: np.ndarray, text: str) -> np.ndarray:
    out = frame.copy()
    cv2.rectangle(out, (60, 400), (900, 480), (20, 20, 20), -1)
    cv2.putText(out, text, (80, 460), cv2.FONT_HERSHEY_DUPLEX, 1.6, (255, 255, 255), 3)
    return out


def write(path: Path, frames) -> Path:
    with mpeg4_writer(path, SIZE, FPS, 6_000_000) as put:
        for frame in frames:
            put(frame)
    return path


def spans(results: list[dict]) -> dict[str, tuple[float, float]]:
    return {
        r["full_text"]: (r["time_segment"]["start_seconds"], r["time_segment"]["end_seconds"])
        for r in results
    }


@pytest.fixture(scope="module")
def still(media) -> np.ndarray:
    """The group photo t1.jpg: people, no text of its own."""
    return cv2.resize(photos(media)[4], SIZE, interpolation=cv2.INTER_AREA)


def test_text_appearing_changing_and_leaving_a_still_shot_is_caught(still, tmp_path):
    # 0-2 s nothing, 2-4 s OPENING NIGHT, 4-6 s TICKETS 20 EUR, 6-8 s nothing
    texts = [None, "OPENING NIGHT", "TICKETS 20 EUR", None]
    frames = [
        still if texts[i // (2 * FPS)] is None else caption(still, texts[i // (2 * FPS)])
        for i in range(8 * FPS)
    ]
    path = write(tmp_path / "still.mp4", frames)
    whole, _ = read_video(path, reuse=False)
    results, analyzer = read_video(path, reuse=True)
    assert results == whole
    found = spans(results)
    assert set(found) == {"OPENING NIGHT", "TICKETS 20 EUR"}, found
    assert found["OPENING NIGHT"][0] == pytest.approx(2.0, abs=1.0)
    assert found["TICKETS 20 EUR"][1] == pytest.approx(6.0, abs=1.0)
    assert analyzer.frames_read < analyzer.frames_seen / 2


def test_a_caption_fading_in_slower_than_the_change_threshold_is_still_read(still, tmp_path):
    """Each sampled frame differs from the one before by less than a block change, but the
    caption's rows are compared with the frame they were last read in, so the change adds up."""
    seconds = 16
    shown = caption(still, "OPENING NIGHT").astype(np.float32)
    frames = [
        (still * (1 - a) + shown * a).round().astype(np.uint8)
        for a in np.minimum(1.0, np.arange(seconds * FPS) / ((seconds - 2) * FPS))
    ]
    path = write(tmp_path / "fade.mp4", frames)
    whole, _ = read_video(path, reuse=False)
    results, analyzer = read_video(path, reuse=True)
    start_whole = spans(whole)["OPENING NIGHT"][0]
    found = spans(results)
    assert "OPENING NIGHT" in found, results
    assert found["OPENING NIGHT"][0] <= start_whole + 2.0
    assert found["OPENING NIGHT"][1] == pytest.approx(seconds, abs=1.0)
    assert analyzer.frames_read < analyzer.frames_seen / 2


def brightened(frame: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(frame.astype(np.float32) * gain, 0, 255).round().astype(np.uint8)


def test_a_whole_picture_fading_in_and_out_gives_its_caption_the_same_span(still, tmp_path):
    """A fade moves every pixel a little each sample: rows are read again once their pixels
    moved more than a block change since their text was settled, so the caption is found and
    lost in the same samples as reading every frame whole."""
    gains = [*np.linspace(0, 1, 4 * FPS), *[1.0] * (2 * FPS), *np.linspace(1, 0, 4 * FPS)]
    shown = caption(still, "OPENING NIGHT")
    path = write(tmp_path / "fades.mp4", [brightened(shown, g) for g in gains])
    whole, _ = read_video(path, reuse=False)
    results, analyzer = read_video(path, reuse=True)
    assert results == whole and "OPENING NIGHT" in spans(results)
    assert analyzer.frames_read < analyzer.frames_seen / 2


def test_a_faint_caption_in_a_slow_fade_is_found_and_lost_within_a_sample(still, tmp_path):
    """A half-transparent caption through 10 s fades: its pixels move under a block change a
    sample, so its rows are read every other sample or so, and its span may differ from reading
    every frame whole by one sample at either end (the price of not reading every row at every
    shift of brightness: testvideo.mp4's exposure change at 15 s)."""
    shown = still.copy()
    cv2.putText(shown, "OPENING NIGHT", (80, 460), cv2.FONT_HERSHEY_DUPLEX, 1.6, (255,) * 3, 3)
    shown = ((still.astype(np.float32) + shown) / 2).round().astype(np.uint8)
    gains = [*np.linspace(0, 1, 10 * FPS), *[1.0] * (3 * FPS), *np.linspace(1, 0, 10 * FPS)]
    path = write(tmp_path / "slow_fades.mp4", [brightened(shown, g) for g in gains])
    whole, _ = read_video(path, reuse=False)
    results, analyzer = read_video(path, reuse=True)
    assert spans(results).keys() == spans(whole).keys() and len(spans(whole)) == 1
    for text, (start, end) in spans(whole).items():
        assert spans(results)[text] == pytest.approx((start, end), abs=1.0)  # a sample at 1 fps
    assert analyzer.frames_read < analyzer.frames_seen / 2


def test_an_exposure_change_that_moves_no_pixel_far_reads_nothing(still, tmp_path):
    """The shot brightens by 8% (testvideo.mp4's camera does at 15 s): the caption's pixels
    stay within a block change, so its text stands and nothing is read again."""
    shown = caption(still, "OPENING NIGHT")
    frames = [shown] * (3 * FPS) + [brightened(shown, 1.08)] * (3 * FPS)
    path = write(tmp_path / "exposure.mp4", frames)
    whole, _ = read_video(path, reuse=False)
    results, analyzer = read_video(path, reuse=True)
    assert results == whole and set(spans(results)) == {"OPENING NIGHT"}
    assert analyzer.frames_read == 1  # the first frame


def test_cutting_back_to_a_shot_already_read_reads_nothing(media, still, tmp_path):
    """Shot, reverse shot (an interview's two cameras): each picture is read once."""
    other = cv2.resize(photos(media)[1], SIZE, interpolation=cv2.INTER_AREA)
    shots = [caption(still, "OPENING NIGHT"), caption(other, "TICKETS 20 EUR")]
    frames = [shots[(i // (2 * FPS)) % 2] for i in range(12 * FPS)]
    path = write(tmp_path / "cuts.mp4", frames)
    whole, _ = read_video(path, reuse=False)
    results, analyzer = read_video(path, reuse=True)
    assert results == whole
    assert {r["full_text"] for r in results} == {"OPENING NIGHT", "TICKETS 20 EUR"}
    assert analyzer.frames_seen == 12
    assert analyzer.frames_read == 2  # the first frame of each shot


def test_a_caption_over_a_pan_is_read_in_every_frame_and_recognized_once(media, tmp_path):
    moving = film(photos(media)[4], 6 * FPS, pan=(6.0, 0.0))
    frames = [caption(cv2.resize(f, SIZE), "LIVE FROM THE FOREST") for f in moving]
    path = write(tmp_path / "pan.mp4", frames)
    whole, _ = read_video(path, reuse=False)
    results, analyzer = read_video(path, reuse=True)
    assert results == whole and "LIVE FROM THE FOREST" in spans(results)
    assert analyzer.frames_read > 0.8 * analyzer.frames_seen  # everything moved: read again
    # the caption's own pixels did not move: the detector finds it in every frame, and the
    # recognizer reads it again only where they did
    assert analyzer.lines_found >= analyzer.frames_seen, analyzer.lines_found
    assert analyzer.lines_recognized * 3 <= analyzer.lines_found, analyzer.lines_recognized


def test_a_caption_changing_over_a_pan_is_recognized_again(media, tmp_path):
    """The same box at the same place, one character changed: the new text is read."""
    moving = film(photos(media)[4], 8 * FPS, pan=(6.0, 0.0))
    texts = ["TICKETS 20 EUR"] * (4 * FPS) + ["TICKETS 25 EUR"] * (4 * FPS)
    frames = [caption(cv2.resize(f, SIZE), text) for f, text in zip(moving, texts, strict=True)]
    path = write(tmp_path / "pan_change.mp4", frames)
    readings = []
    for reuse in (False, True):
        settings = Settings(stages=["ocr"]).with_groups(OcrSettings(reuse_unchanged=reuse))
        analyzer = OcrAnalyzer(settings)
        context = stage_context(path, "ocr", analyzer, settings)
        frame_texts = [
            (f["t"], [line["text"] for line in f["lines"]])
            for payload in context.payloads
            for f in payload["frames"]
        ]
        readings.append((frame_texts, analyzer.lines_recognized))
    (whole, all_lines), (changed_only, recognized) = readings
    assert changed_only == whole  # the change is caught in the first frame that shows it
    assert [texts for t, texts in whole] == [["TICKETS 20 EUR"]] * 4 + [["TICKETS 25 EUR"]] * 4
    assert recognized * 2 <= all_lines, (recognized, all_lines)


def test_flat_rows_hold_no_text_and_a_job_never_reuses_another_jobs_reading():
    black = np.zeros((540, 960, 3), np.uint8)
    line = caption(black, "EXIT")
    assert textured_rows(thumbnail(line)).tolist() == [False] * 6 + [True] * 2 + [False]
    assert bands(np.array([False] * 7 + [True, False])) == [(6 / GRID[1], 9 / GRID[1])]
    memory = TextMemory()
    plan = memory.plan("job_a", thumbnail(line), line.shape)
    memory.remember("job_a", thumbnail(line), line.shape, plan, ["anything"])
    assert memory.plan("job_b", thumbnail(line), line.shape).kept == []
    assert memory.plan("job_a", thumbnail(line), line.shape).kept == ["anything"]
    recognized = LineMemory()
    recognized.learn("job_a", line, (80, 425, 160, 465), ("EXIT", 0.99))
    assert recognized.recall("job_b", line, (80, 425, 160, 465)) is None
    assert recognized.recall("job_a", line, (81, 424, 160, 466)) == ("EXIT", 0.99)
    assert recognized.recall("job_a", line, (80, 425, 300, 465)) is None  # another box
    assert recognized.recall("job_a", caption(black, "EXTT"), (80, 425, 160, 465)) is None


def test_a_frame_read_whole_keeps_no_line_of_the_picture_before():
    """Lines of unchanged rows are not kept beside a whole read that finds them again."""
    line = caption(np.zeros((540, 960, 3), np.uint8), "EXIT")
    busy = line.copy()  # rows of blocks 1 and 4 of 9 change: bands over 6 of them
    noise = np.random.default_rng(0).integers(0, 255, (540, 960, 3), np.uint8)
    busy[70:110], busy[250:290] = noise[70:110], noise[250:290]
    exit_line = OcrLine("EXIT", 0.99, (0.08, 0.77, 0.3, 0.86))
    memory = TextMemory()
    plan = memory.plan("job", thumbnail(line), line.shape)
    memory.remember("job", thumbnail(line), line.shape, plan, [exit_line])
    assert memory.plan("job", thumbnail(line), line.shape).kept == [exit_line]
    plan = memory.plan("job", thumbnail(busy), busy.shape)
    assert plan.bands == [(0.0, 1.0)] and plan.kept == []
