"""The scene stage's pure computation on real and synthetic frames, without Kafka."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from framewise.config import Settings
from framewise.media import decode_video_segment
from stages.local import run_video_stages, stage_context
from stages.profiles import profiles
from stages.scene.detector import SceneFeatures, ShotDetector, frame_features
from stages.scene.stage import SceneAnalyzer, finalize_video

# How the expected boundaries of testvideo.mp4 were established: we decoded all 720 frames and
# printed, per frame, mean brightness and the HSV difference to the previous frame, then looked
# at frames either side of every change (contact sheets of frames 15..620). A person sees:
#   0-29 black title (copyright line only) | hard cut at 30 | leaf on a rock | hard cut at 180
#   to black | black 180-210 | fade in 211-240 to a deer | fade out 331-360 | black 361-393 |
#   fade in 394-423 to a leaf | dissolve 528-559 to a metal grid | fade out 664-693 | black.
# PySceneDetect's ContentDetector finds only [30, 180, 394]; its fade detector [15, 198, 377].
HARD_CUTS = [30, 180]
TRANSITIONS = [(211, 240), (331, 360), (394, 423), (528, 559), (664, 693)]


def features_of(path, segments, rate=30000 / 1001, batch_frames: int | None = None):
    profile = profiles(Settings())["motion"]  # what the pipeline decodes by default
    if batch_frames is not None:
        profile = replace(profile, batch_frames=batch_frames)
    payloads = []
    for start, end in segments:
        for batch in decode_video_segment(path, [profile], start, end, 1 << 30):
            payloads.append(
                frame_features(
                    batch.frames, batch.context_frames, batch.frame_indices, batch.timestamps, rate
                ).to_payload()
            )
    return SceneFeatures.from_payloads(payloads)


@pytest.mark.parametrize("segments", [[(0, None)], [(0, 7.0), (7.0, 15.5), (15.5, None)]])
def test_testvideo_shots_match_what_a_person_sees(test_video, segments):
    features = features_of(test_video, segments)
    assert features.frame_indices == list(range(720)), "every frame exactly once"
    frames = [features.frame_indices[b.frame] for b in ShotDetector().boundaries(features, 29.97)]
    expected = len(HARD_CUTS) + len(TRANSITIONS)
    assert len(frames) == expected, f"boundaries {frames}"
    for cut in HARD_CUTS:
        assert any(abs(f - cut) <= 2 for f in frames), f"cut {cut} missed in {frames}"
    for lo, hi in TRANSITIONS:
        assert any(lo <= f <= hi for f in frames), f"transition {lo}-{hi} missed in {frames}"


def test_features_do_not_depend_on_how_frames_are_batched(test_video):
    """Each batch repeats enough context frames for every look back of the rules, so the
    batch size (``FRAMEWISE_MOTION_BATCH_FRAMES``) changes the work, never a feature."""
    by_size = [
        features_of(test_video, [(0, 9.0), (9.0, None)], batch_frames=n) for n in (64, 128, 300)
    ]
    assert by_size[0].frame_indices == list(range(720))
    for other in by_size[1:]:
        for name, values in by_size[0].__dict__.items():
            np.testing.assert_array_equal(
                np.asarray(getattr(other, name)), np.asarray(values), name
            )


def synthetic_features(frames: np.ndarray, rate: float = 30.0) -> SceneFeatures:
    return frame_features(
        frames, 0, list(range(len(frames))), [i / rate for i in range(len(frames))], rate
    )


def textured(seed: int, shape=(144, 256)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (shape[0] // 16, shape[1] // 16, 3), dtype=np.uint8)
    return small.repeat(16, 0).repeat(16, 1)


def test_a_flash_is_not_a_cut():
    shot = textured(1)
    frames = np.stack([shot] * 30 + [np.full_like(shot, 255)] * 2 + [shot] * 30)
    assert ShotDetector().boundaries(synthetic_features(frames), 30.0) == []


def test_camera_pan_is_not_a_cut():
    panorama = np.concatenate([textured(s) for s in range(4)], axis=1)  # 1024 wide
    frames = np.stack([panorama[:, x : x + 256] for x in range(0, 600, 8)])  # fast pan
    assert ShotDetector().boundaries(synthetic_features(frames), 30.0) == []


def test_hard_cut_between_textures_is_found_exactly():
    a, b = textured(1), textured(2)
    frames = np.stack([a] * 40 + [b] * 40)
    boundaries = ShotDetector().boundaries(synthetic_features(frames), 30.0)
    assert [(x.frame, x.kind) for x in boundaries] == [(40, "cut")]


def test_dissolve_is_found_inside_the_transition():
    a, b = textured(3).astype(float), textured(4).astype(float)
    mix = [((1 - w) * a + w * b).astype(np.uint8) for w in np.linspace(0, 1, 30)]
    frames = np.stack([a.astype(np.uint8)] * 40 + mix + [b.astype(np.uint8)] * 40)
    boundaries = ShotDetector().boundaries(synthetic_features(frames), 30.0)
    assert len(boundaries) == 1 and 40 <= boundaries[0].frame < 70, boundaries


def test_boundary_kinds_reach_later_stages_but_not_the_public_body(test_video):
    settings = Settings(stages=["scene"])
    context = stage_context(test_video, "scene", SceneAnalyzer(settings), settings)
    internal = replace(context, result=finalize_video(context, settings))
    kinds = [b["kind"] for b in internal.shot_boundaries()]
    assert kinds == ["cut", "cut", "fade", "fade", "fade", "dissolve", "fade"]
    assert all(0.5 <= b["confidence"] <= 1 for b in internal.shot_boundaries())
    public = run_video_stages(test_video, settings).model_dump()
    assert "_shot_boundaries" not in public and len(public["raw_scenes"]) == 8
