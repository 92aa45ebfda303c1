"""Frame batches in the blob store: JPEG by default, exact ``.npy`` on request, either readable."""

from __future__ import annotations

import numpy as np
import pytest

from framewise import frame_files
from framewise.blobstore import BlobStore
from framewise.edits import film, photos


@pytest.fixture(scope="module")
def frames(media) -> np.ndarray:
    """Six frames of a real photo filmed by a panning camera."""
    return film(photos(media)[1], 6)


def test_jpeg_batches_are_an_order_smaller_and_close_to_the_pixels(tmp_path, frames):
    blobs = BlobStore(tmp_path)
    original = frames
    stored = frame_files.store(blobs, "frames/job/motion/0.frames", original, 95)
    back = frame_files.load(blobs, "frames/job/motion/0.frames")
    assert back.shape == original.shape and back.dtype == np.uint8
    assert stored * 5 < original.nbytes  # 8x on average over testvideo.mp4 (bench)
    assert np.abs(back.astype(int) - original).mean() < 4


def test_quality_zero_keeps_exact_pixels_and_old_npy_batches_still_read(tmp_path, frames):
    blobs = BlobStore(tmp_path)
    original = frames
    frame_files.store(blobs, "a.frames", original, 0)
    assert np.array_equal(frame_files.load(blobs, "a.frames"), original)
    blobs.put_bytes("b.npy", frame_files.encode(original, 0))
    assert np.array_equal(frame_files.load(blobs, "b.npy"), original)


def test_a_damaged_batch_is_an_error_not_garbage(frames):
    data = bytearray(frame_files.encode(frames, 90))
    data[len(frame_files.MAGIC) + 40 : len(frame_files.MAGIC) + 400] = b"\0" * 360
    with pytest.raises(ValueError):
        frame_files.decode(bytes(data[: len(data) // 3]))


def test_a_stage_decodes_only_the_frames_it_samples(frames):
    data = frame_files.encode(frames, 90)
    everything = frame_files.decode(data)
    assert np.array_equal(frame_files.decode(data, [4, 1]), everything[[4, 1]])
    assert frame_files.decode(data, []).shape[0] == 0
    raw = frame_files.encode(frames, 0)
    assert np.array_equal(frame_files.decode(raw, [2]), frames[[2]])


def test_frames_read_as_opencv_decodes_them(frames):
    import cv2

    data = frame_files.encode(frames, 95)
    read = frame_files.decode(data)
    for frame, back in zip(frames, read, strict=True):
        _, jpeg = cv2.imencode(
            ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
        )
        opencv = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert np.array_equal(back, opencv)
