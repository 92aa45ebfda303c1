"""Every transition editors use, and every trap, as synthetic videos made from real photos with
a moving camera: encoded, decoded and scored like any upload (``framewise/edits.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from framewise.config import Settings
from framewise.edits import FPS, SIZE, Edit, edit_suite, photos, score
from framewise.media import decode_video_segment
from framewise.synthetic import mpeg4_writer
from stages.profiles import profiles
from stages.scene.detector import SceneFeatures, ShotDetector, frame_features


@pytest.fixture(scope="session")
def edits(media: Path) -> dict[str, Edit]:
    return {edit.name: edit for edit in edit_suite(photos(media))}


def decoded_features(edit: Edit, directory: Path) -> SceneFeatures:
    """The edit as an MPEG-4 file, decoded through the motion profile as the pipeline does."""
    path = directory / "edit.mp4"
    with mpeg4_writer(path, SIZE, FPS, 3_000_000) as write:
        for frame in edit.frames:
            write(frame)
    profile = profiles(Settings())["motion"]  # what the pipeline decodes by default
    payloads = [
        frame_features(
            batch.frames, batch.context_frames, batch.frame_indices, batch.timestamps, FPS
        ).to_payload()
        for batch in decode_video_segment(path, [profile], 0.0, None, 1 << 30)
    ]
    return SceneFeatures.from_payloads(payloads)


NAMES = [edit.name for edit in edit_suite([np.zeros((90, 160, 3), np.uint8)] * 4)]


@pytest.mark.parametrize("name", NAMES)
def test_rule_detector_finds_every_transition_and_nothing_else(edits, name, tmp_path):
    edit = edits[name]
    features = decoded_features(edit, tmp_path)
    assert features.frame_indices == list(range(len(edit.frames)))
    found = ShotDetector().boundaries(features, FPS)
    result = score(edit.windows, [b.frame for b in found])
    assert result.perfect, f"{name}: expected {edit.windows}, got {found}"
    for boundary in found:
        window = next(k for k, (lo, hi) in enumerate(edit.windows) if lo <= boundary.frame <= hi)
        assert boundary.kind == edit.kinds[window], f"{name}: {found}"
        assert 0.5 <= boundary.confidence <= 1.0


def test_the_suite_scores_a_detector_that_reports_everywhere_as_wrong(edits):
    """The scoring itself: missing, extra and doubled boundaries all count."""
    assert score([(10, 12)], [11]).perfect
    assert score([(10, 12)], []).missed == 1
    assert score([(10, 12)], [11, 12]).false == 1
    assert score([], [5]).false == 1
    every_frame = list(range(len(edits["hard cut"].frames)))
    assert not score(edits["hard cut"].windows, every_frame).perfect
