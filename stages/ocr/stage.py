"""The OCR stage: text on screen with its language, merged over time for videos."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from framewise.config import Settings
from framewise.picture_change import sequence_of, thumbnail
from schemas.messages import FrameBatch
from stages.ocr.engine import OcrLine, PpOcrEngine, detector_file
from stages.ocr.language import LanguageIdentifier, block_language
from stages.ocr.merge import group_blocks, join_block, track_lines, video_results
from stages.ocr.reuse import LineMemory, TextMemory
from stages.ocr.settings import OcrSettings
from stages.spec import StageSpec, VideoContext


def on_ocr_grid(t: float, ocr_rate: float, detail_rate: float) -> bool:
    """Whether a detail frame is the first at or after one of the OCR stage's own (sparser)
    sampling slots ``k / ocr_rate``: the OCR stage samples its own rate from detail frames."""
    if not detail_rate or ocr_rate >= detail_rate:
        return True
    slot = math.floor(t * ocr_rate + 1e-6) / ocr_rate
    return slot > t - 1.0 / detail_rate + 1e-9


def ocr_samples(batch: FrameBatch, settings: Settings) -> list[int] | None:
    """The frames of a video batch on the OCR stage's grid (the worker decodes only those)."""
    if batch.media_type != "video":
        return None
    fps = settings.group(OcrSettings).fps
    own = range(batch.context_frames, len(batch.timestamps))
    return [i for i in own if on_ocr_grid(batch.timestamps[i], fps, batch.fps)]


class OcrAnalyzer:
    """Reads text on the OCR stage's sampling grid; with ``FRAMEWISE_OCR_REUSE_UNCHANGED`` only
    where a video's picture changed since the frame last read (``stages/ocr/reuse.py``).
    ``frames_seen`` and ``frames_read`` (in whole-frame equivalents) count the detector's
    work, ``lines_found`` and ``lines_recognized`` the recognizer's."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ocr = settings.group(OcrSettings)
        self.engine = PpOcrEngine(settings).load()
        self.languages = LanguageIdentifier(self.ocr.languages, self.ocr.language_confidence)
        self.languages.load()  # with the worker, before it consumes
        self.memory = TextMemory()
        self.recognized = LineMemory()
        self.frames_seen = 0
        self.frames_read = 0.0
        self.lines_found = 0
        self.lines_recognized = 0

    def analyze(self, frames: np.ndarray, batch: FrameBatch) -> dict[str, Any]:
        out = []
        reuse = self.ocr.reuse_unchanged and batch.media_type == "video"
        sequence = sequence_of(batch)
        for frame, t in zip(
            frames[batch.context_frames :], batch.timestamps[batch.context_frames :], strict=True
        ):
            if not on_ocr_grid(t, self.ocr.fps, batch.fps):
                continue
            self.frames_seen += 1
            if not reuse:
                lines = self.read(frame, (0.0, 1.0))
            else:
                thumb = thumbnail(frame)
                plan = self.memory.plan(sequence, thumb, frame.shape)
                read = [line for band in plan.bands for line in self.read(frame, band, sequence)]
                lines = plan.kept + read
                self.memory.remember(sequence, thumb, frame.shape, plan, lines)
            out.append({"t": t, "lines": [line.to_payload() for line in lines]})
        return {"frames": out}

    def read(
        self, frame: np.ndarray, band: tuple[float, float], sequence: str | None = None
    ) -> list[OcrLine]:
        """The lines in a full-width ``band`` of ``frame``, with boxes in frame fractions.
        With a ``sequence``, lines whose pixels did not change since it last recognized them
        keep their text (``LineMemory``)."""
        height = frame.shape[0]
        top, bottom = round(band[0] * height), round(band[1] * height)
        self.frames_read += (bottom - top) / height
        detection = self.engine.detect(frame[top:bottom])
        boxes = [(x0, y0 + top, x1, y1 + top) for x0, y0, x1, y1 in detection.boxes]
        readings = [
            None if sequence is None else self.recognized.recall(sequence, frame, box)
            for box in boxes
        ]
        unknown = [i for i, reading in enumerate(readings) if reading is None]
        texts = self.engine.recognize([detection.crops[i] for i in unknown])
        for i, reading in zip(unknown, texts, strict=True):
            readings[i] = reading
            if sequence is not None:
                self.recognized.learn(sequence, frame, boxes[i], reading)
        self.lines_found += len(boxes)
        self.lines_recognized += len(unknown)
        lines = self.engine.lines(detection, readings)
        for line in lines:
            x0, y0, x1, y1 = line.box
            span = (bottom - top) / height
            line.box = (x0, band[0] + y0 * span, x1, band[0] + y1 * span)
            line.language = self.languages.confident(line.text)
        return lines


def finalize_image(payload: dict[str, Any], settings: Settings) -> dict[str, Any]:
    lines = [OcrLine.from_payload(p) for f in payload.get("frames", []) for p in f["lines"]]
    results = []
    for block in group_blocks([line.box for line in lines]):
        texts = [lines[i].text for i in block]
        language = block_language(texts, [lines[i].language for i in block])
        results.append(
            {
                "language_code": language,
                "full_text": join_block(texts, [lines[i].box for i in block]),
            }
        )
    return {"ocr_results": results}


def finalize_video(ctx: VideoContext, settings: Settings) -> dict[str, Any]:
    frames = [
        (f["t"], [OcrLine.from_payload(p) for p in f["lines"]])
        for payload in ctx.payloads
        for f in payload["frames"]
    ]
    fps = settings.group(OcrSettings).fps
    interval = 1.0 / min(fps, ctx.probe.fps or fps)
    tracks = track_lines(frames, max_gap=2.5 * interval)
    results = []
    for text, start, end, language in video_results(tracks, interval, ctx.probe.duration_seconds):
        results.append(
            {
                "language_code": language,
                "full_text": text,
                "time_segment": {"start_seconds": start, "end_seconds": end},
            }
        )
    return {"ocr_results": results}


OCR = StageSpec(
    name="ocr",
    profile="detail",
    media_types=frozenset({"video", "image"}),
    make_analyzer=OcrAnalyzer,
    samples=ocr_samples,
    finalize_video=finalize_video,
    finalize_image=finalize_image,
    models=lambda settings: [(PpOcrEngine.card_for(settings), detector_file(settings))],
)
