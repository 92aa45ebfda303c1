"""TransNetV2, the learned shot detector, as the scene stage runs it: batch by batch with
context, on onnxruntime, from the file `framewise models install` converted."""

from __future__ import annotations

import numpy as np
import pytest

from framewise.config import Settings
from framewise.media import decode_video_segment, probe_video
from stages.local import frame_message
from stages.profiles import profiles
from stages.scene import transnet
from stages.scene.settings import SceneSettings
from stages.scene.stage import SceneAnalyzer, finalize_video
from stages.spec import VideoContext
from tests.test_scene_detector import HARD_CUTS, TRANSITIONS


@pytest.fixture(scope="module")
def settings() -> Settings:
    settings = Settings(stages=["scene"]).with_groups(SceneSettings(detector="transnetv2"))
    if not transnet.model_path(settings).is_file():
        pytest.skip(f"{transnet.model_path(settings)} missing: run `framewise models install`")
    return settings


def one_pass(frames: np.ndarray, model: transnet.TransNetV2) -> np.ndarray:
    """The authors' inference: the whole video at once, padded with its first and last frame."""
    first, probabilities = model.predict(frames, 0)
    assert first == 0
    return probabilities


def test_batches_with_context_predict_what_one_pass_does_and_find_every_boundary(
    settings, test_video
):
    analyzer = SceneAnalyzer(settings)
    profile = profiles(settings)["motion"]
    payloads, frames = [], []
    for batch in decode_video_segment(test_video, [profile], 0.0, None, 1 << 30):
        payloads.append(analyzer.analyze(batch.frames, frame_message(batch, ["scene"])))
        frames.extend(batch.frames[batch.context_frames :])
    assert len(payloads) > 5, "several batches, so the context hand-over is exercised"

    by_frame: dict[int, float] = {}
    for payload in payloads:
        by_frame.update(zip(payload["transition_frames"], payload["transition"], strict=True))
    streamed = np.array([by_frame[i] for i in range(720)])
    assert analyzer.transnet is not None
    whole = one_pass(np.stack(frames), analyzer.transnet)
    # windows fall elsewhere, which moves uncertain frames a little; decisions stay the same
    np.testing.assert_allclose(streamed, whole, atol=0.2)
    threshold = settings.group(SceneSettings).transnet_threshold

    def decisions(probabilities: np.ndarray) -> list[tuple[int, str]]:
        return [(b.frame, b.kind) for b in transnet.boundaries(probabilities, threshold)]

    assert decisions(streamed) == decisions(whole)

    probe = probe_video(test_video, settings.max_pixels)
    result = finalize_video(VideoContext(probe, probe.fps, payloads), settings)
    starts = [round(s["start_seconds"] * probe.fps) for s in result["raw_scenes"]][1:]
    assert len(starts) == len(HARD_CUTS) + len(TRANSITIONS), starts
    for cut in HARD_CUTS:
        assert any(abs(s - cut) <= 2 for s in starts), (cut, starts)
    for lo, hi in TRANSITIONS:
        assert any(lo <= s <= hi for s in starts), ((lo, hi), starts)
    kinds = [b["kind"] for b in result["_shot_boundaries"]]
    assert kinds[:2] == ["cut", "cut"] and set(kinds) <= {"cut", "dissolve"}
