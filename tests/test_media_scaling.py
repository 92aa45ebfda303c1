"""Frames are scaled plane by plane with halvings (``framewise.media.shrink``): the result must
stay what OpenCV's area filter gives, whatever the sizes. Small profiles decode without the
loop filter on unreferenced frames, within a few levels of filtered frames."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from framewise import keyframes
from framewise.media import Profile, deblocking_optional, decode_video_segment, shrink, to_rgb


@pytest.fixture(scope="module")
def frame(test_video) -> av.VideoFrame:
    with av.open(str(test_video)) as container:
        for index, decoded in enumerate(container.decode(video=0)):
            if index == 100:  # a leaf on a rock: texture everywhere
                return decoded
    raise AssertionError("testvideo.mp4 has fewer than 101 frames")


@pytest.mark.parametrize("size", [(128, 72), (160, 90), (240, 136), (256, 144), (1000, 562)])
@pytest.mark.parametrize("crop", [(720, 1280), (719, 1279)])
def test_shrink_stays_an_area_filter(frame, size, crop):
    """Within a few levels of one area step on a textured frame: the two box grids differ by
    a fraction of a source pixel (an odd side repeats its last row or column)."""
    luma = frame.to_ndarray(format="gray")[: crop[0], : crop[1]]
    ours = shrink(luma, size).astype(np.int16)
    area = cv2.resize(luma, size, interpolation=cv2.INTER_AREA).astype(np.int16)
    assert ours.shape == area.shape == (size[1], size[0])
    assert np.abs(ours - area).mean() < 2.5


def test_shrink_by_powers_of_two_is_exact(frame):
    luma = frame.to_ndarray(format="gray")
    exact = luma.reshape(90, 8, 160, 8).mean(axis=(1, 3))
    assert np.abs(shrink(luma, (160, 90)) - exact).max() <= 1.5  # rounding at each halving


def test_to_rgb_matches_ffmpegs_own_conversion(frame):
    ours = to_rgb(frame, (128, 72)).astype(np.int16)
    ffmpeg = frame.to_ndarray(format="rgb24", width=128, height=72, interpolation="AREA")
    assert ours.shape == ffmpeg.shape
    assert np.abs(ours - ffmpeg.astype(np.int16)).mean() < 5.0  # colour rounding and siting


def decoded(path, profiles) -> list[np.ndarray]:
    return [
        f.astype(np.int16)
        for batch in decode_video_segment(path, profiles, 0.0, 8.0, 1 << 30, threads=1)
        for f in batch.frames
    ]


def test_small_profiles_skip_the_loop_filter_only_where_nothing_refers_to_it(test_video):
    """Motion and keyframe sizes (4x smaller or more): frames without the loop filter on
    unreferenced frames stay within a few levels of filtered ones; detail frames keep it."""
    motion, detail = Profile("motion", 0, 128, 64), Profile("detail", 2, 1280, 4)
    assert deblocking_optional([motion, keyframes.PROFILE], 1280, 720)
    assert not deblocking_optional([motion, detail], 1280, 720)
    assert not deblocking_optional([motion], 320, 180)  # not 4x smaller
    skipped = decoded(test_video, [motion])
    with av.open(str(test_video)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        filtered = [
            to_rgb(f, (128, 72)).astype(np.int16)
            for f in container.decode(stream)
            if f.time < 8.0 - 1e-6
        ]
    assert len(skipped) == len(filtered) == 240
    differences = np.abs(np.stack(skipped) - np.stack(filtered))
    assert differences.mean() < 0.05 and differences.max() <= 8
    assert differences.any()  # the option took effect on this H.264 file
    full = decoded(test_video, [detail])
    with av.open(str(test_video)) as container:
        frames = [f for f in container.decode(video=0) if f.time < 8.0 - 1e-6][::15]
        pairs = zip(full, frames, strict=True)
        assert all(np.array_equal(a, to_rgb(b, (1280, 720))) for a, b in pairs)
