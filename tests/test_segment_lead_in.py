"""A segment that starts between key frames decodes its lead-in (the frames from the key frame
before it) only as references: the frames it keeps are those of a decode from the start."""

from __future__ import annotations

import av
import numpy as np
import pytest

from framewise.media import Profile, decode_video_segment, frames_after_lead_in, to_rgb


def full_decode(path, start_s: float, end_s: float) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        return [
            (frame.time, frame.to_ndarray(format="rgb24"))
            for frame in container.decode(stream)
            if start_s - 1e-6 <= frame.time < end_s - 1e-6
        ]


def test_the_lead_in_skips_unreferenced_frames_and_keeps_every_later_frame(test_video):
    """testvideo.mp4's key frames are at 0, 1, 6 and 16 s: from the one at 6 s to 11 s, fewer
    frames are decoded than shown (its B-frames refer to nothing), and from 11 s on every
    frame is the same as decoded from the start."""
    with av.open(str(test_video)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        container.seek(int(6.5 / stream.time_base), stream=stream)
        frames = [
            (f.time, f.to_ndarray(format="rgb24"))
            for f in frames_after_lead_in(container, stream, 11.0)
            if f.time < 13.0
        ]
    lead_in = [t for t, _ in frames if t < 11.0 - 1e-6]
    kept = [(t, image) for t, image in frames if t >= 11.0 - 1e-6]
    expected = full_decode(test_video, 11.0, 13.0)
    assert min(lead_in) < 6.1 and len(lead_in) < 0.5 * 5.0 * 29.97  # skipped, not just sought
    assert [t for t, _ in kept] == [t for t, _ in expected]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(kept, expected, strict=True))


@pytest.mark.parametrize("threads", [1, 0])  # 0: FFmpeg's frame threads
def test_a_segment_between_key_frames_decodes_what_one_pass_does(test_video, threads):
    """The motion profile of [12 s, 14 s), its context frames included, is the same frames
    as one decode of the whole video scaled alike."""
    motion = Profile("motion", 0, 640, 30, context_seconds=0.5)  # the loop filter kept
    batches = list(decode_video_segment(test_video, [motion], 12.0, 14.0, 1 << 30, threads=threads))
    times = [t for b in batches for t in b.timestamps[b.context_frames :]]
    context = batches[0].timestamps[: batches[0].context_frames]
    with av.open(str(test_video)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        reference = {
            round(f.time, 6): to_rgb(f, (640, 360))
            for f in container.decode(stream)
            if 11.0 <= f.time < 14.0 - 1e-6
        }
    assert len(context) == 15 and context[-1] < 12.0 <= times[0]
    assert len(times) == 60
    for batch in batches:
        for t, image in zip(batch.timestamps, batch.frames, strict=True):
            assert np.array_equal(image, reference[t])


CODEC_OPTIONS = {
    "libx264": {"x264-params": "keyint=120:bframes=3"},
    "libx265": {"x265-params": "keyint=120:bframes=4:log-level=error"},
    "libvpx-vp9": {"g": "120", "auto-alt-ref": "1", "lag-in-frames": "16"},
    "mpeg4": {"g": "120", "bf": "2"},
}


@pytest.mark.parametrize("codec", sorted(CODEC_OPTIONS))
def test_every_codec_keeps_the_frames_of_a_decode_from_the_start(tmp_path, codec):
    """H.264 and HEVC skip their unreferenced frames in the lead-in, VP9 (whose decoder
    skips none here) and MPEG-4 decode it whole: the kept frames are the same either way."""
    path = tmp_path / f"{codec}.mkv"
    texture = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    try:
        out = av.open(str(path), "w")
        stream = out.add_stream(codec, rate=30, options=CODEC_OPTIONS[codec])
    except (av.error.FFmpegError, ValueError) as exc:
        pytest.skip(f"{codec} is not in this PyAV build: {exc}")
    with out:
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(300):
            frame = av.VideoFrame.from_ndarray(np.roll(texture, i, axis=1), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    expected = {round(t, 4): image for t, image in full_decode(path, 7.0, 10.0)}
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        video.codec_context.thread_count = 1
        container.seek(int(7.0 / video.time_base), stream=video)
        kept = {
            round(f.time, 4): f.to_ndarray(format="rgb24")
            for f in frames_after_lead_in(container, video, 7.0)
            if f.time >= 7.0 - 1e-6
        }
    assert kept.keys() == expected.keys() and len(kept) == 90
    assert all(np.array_equal(kept[t], expected[t]) for t in expected)
