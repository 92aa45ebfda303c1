"""Synthetic media made from pixels or real photos, for the tests and the benchmarks: videos with
hard cuts every few seconds, slideshows of images, and claimed timelines far longer than
what a file holds."""

from __future__ import annotations

import fractions
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import av
import cv2
import numpy as np


@contextmanager
def mpeg4_writer(path: Path, size: tuple[int, int], fps: int, bit_rate: int):
    """Yields ``write(rgb_frame)``; flushes the encoder and closes the file on exit."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bit_rate

        def write(image: np.ndarray) -> None:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)

        yield write
        for packet in stream.encode():
            out.mux(packet)


def write_timeline_video(
    path: Path,
    frame_times_ms: list[int],
    image_at: Callable[[int, int], np.ndarray] | None = None,
) -> None:
    """An H.264 video of one 160x120 frame at each of ``frame_times_ms`` (time base 1/1000),
    the ``i``-th frame being ``image_at(i, ms)`` (default: flat grey levels): a claimed
    timeline far longer than the file holds, or a variable frame rate."""
    tick = fractions.Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.time_base = stream.codec_context.time_base = tick
        for i, pts in enumerate(frame_times_ms):
            image = (
                image_at(i, pts)
                if image_at is not None
                else np.full((120, 160, 3), (60 + 120 * i) % 256, np.uint8)
            )
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = pts, tick
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def write_cut_video(path: Path, seconds: int, shot_seconds: int, size=(160, 120), fps=30) -> None:
    """A synthetic video with a hard cut every ``shot_seconds``: textured shots of distinct
    colours that drift slowly (so frames are not identical)."""
    rng = np.random.default_rng(7)
    textures = [
        rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3)).repeat(8, 0).repeat(8, 1)
        for _ in range(seconds // shot_seconds)
    ]
    with mpeg4_writer(path, size, fps, 400_000) as write:
        for i in range(seconds * fps):
            shot = i // (shot_seconds * fps)
            write(np.roll(textures[shot], i % size[0], axis=1).astype(np.uint8))


def write_image_video(
    path: Path, images: list[Path], seconds_each: float, fps: int = 10, size=(320, 240)
) -> None:
    """A video of still images shown one after another (hard cuts between them)."""

    with mpeg4_writer(path, size, fps, 2_000_000) as write:
        for image_path in images:
            image = cv2.resize(cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB), size)
            for _ in range(round(seconds_each * fps)):
                write(image)
