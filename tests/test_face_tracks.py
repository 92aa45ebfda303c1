"""Face tracks on real faces, without Kafka: a face followed from frame to frame is embedded
once per track, and the persons per scene stay those found by embedding every face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from framewise.config import Settings
from framewise.edits import film, photos
from framewise.media import decode_video_segment
from framewise.synthetic import mpeg4_writer
from stages.face.analyzer import FaceAnalyzer
from stages.face.settings import FaceSettings
from stages.face.tracks import FaceTracks, signature
from stages.local import frame_message, run_video_stages
from stages.profiles import profiles

SIZE = (1280, 720)


@pytest.fixture(scope="module")
def group(media) -> np.ndarray:
    return photos(media)[-1]


@pytest.fixture(scope="module")
def moving_group(group, tmp_path_factory) -> Path:
    """Two 3 s shots of t1.jpg by a panning, zooming camera: four people, then three."""
    path = tmp_path_factory.mktemp("tracks") / "moving_group.mp4"
    with mpeg4_writer(path, SIZE, 30, 8_000_000) as write:
        for k, centre in enumerate(((0.35, 0.5), (0.6, 0.45))):
            for frame in film(
                group, 90, centre=centre, zoom=(1.0 + 0.2 * k, 1.1 + 0.2 * k), size=SIZE
            ):
                write(frame)
    return path


@pytest.fixture(scope="module")
def swapped_faces(group, tmp_path_factory) -> Path:
    """One person's face, then a cut to another person's face in the same place and size:
    no track may carry the first identity over to the second."""
    path = tmp_path_factory.mktemp("tracks") / "swapped.mp4"
    crops = [group[140:300, 240:400], group[260:430, 430:600]]  # a woman, then a man
    with mpeg4_writer(path, SIZE, 30, 8_000_000) as write:
        for crop in crops:
            frame = np.full((SIZE[1], SIZE[0], 3), 110, np.uint8)
            frame[40:680, 320:960] = cv2.resize(crop, (640, 640))
            for _ in range(60):
                write(frame)
    return path


def scenes(result) -> list[list[str]]:
    return [sorted(p.person_id for p in s.person_ids) for s in result.person_constellation_scenes]


def genders(result) -> list[list[str]]:
    return [
        [p.gender for p in sorted(s.person_ids, key=lambda p: p.person_id)]
        for s in result.person_constellation_scenes
    ]


def faces_per_frame(path: Path, face_settings: Settings) -> tuple[FaceAnalyzer, int]:
    analyzer = FaceAnalyzer(face_settings)
    seen = 0
    for batch in decode_video_segment(
        path, [profiles(face_settings)["detail"]], 0.0, None, 1 << 30
    ):
        payload = analyzer.analyze(batch.frames, frame_message(batch, ["face"]))
        seen += sum(len(frame["faces"]) for frame in payload["frames"])
    return analyzer, seen


def test_a_followed_face_is_embedded_once_per_track(face_settings, moving_group):
    every = face_settings.with_groups(FaceSettings(track_seconds=0, reuse_seconds=0))
    tracked, embedded_all = (
        run_video_stages(moving_group, face_settings),
        run_video_stages(moving_group, every),
    )
    assert scenes(tracked) == scenes(embedded_all)
    assert [len(s) for s in scenes(tracked)] == [4, 3]  # the people each framing shows
    assert genders(tracked) == genders(embedded_all)
    analyzer, seen = faces_per_frame(moving_group, face_settings)
    assert seen >= 40  # the 7 faces of the two framings on each of 6 sampled frames per shot
    assert analyzer.faces_embedded <= 7  # one per face and shot


def test_a_different_face_in_the_same_place_starts_a_new_track(face_settings, swapped_faces):
    every = face_settings.with_groups(FaceSettings(track_seconds=0, reuse_seconds=0))
    tracked, embedded_all = (
        run_video_stages(swapped_faces, face_settings),
        run_video_stages(swapped_faces, every),
    )
    assert scenes(tracked) == scenes(embedded_all) == [["person_1"], ["person_2"]]
    assert genders(tracked) == genders(embedded_all) == [["female"], ["male"]]


def test_tracks_follow_forward_in_time_only_and_forget_a_failed_batch():
    """The rules of ``FaceTracks`` on their own: a face continues the nearest similar track
    of an earlier frame, never one seen later (batches may come out of order) nor one too far
    back, nor a different chip; a track left pending by a batch that failed is forgotten."""
    rng = np.random.default_rng(0)
    chip = signature(rng.integers(0, 255, (150, 150, 3), dtype=np.uint8))
    other = signature(rng.integers(0, 255, (150, 150, 3), dtype=np.uint8))
    box = np.array([100.0, 100.0, 180.0, 180.0])
    tracks = FaceTracks()
    (first,) = tracks.follow([box], [chip], 10.0)
    first.embed_as(0)
    tracks.settle([{"embedding": "e"}])
    (moved,) = tracks.follow([box + 30], [chip], 10.5)  # a little later, a little further
    assert moved is first and not moved.needs_embedding(5.0)
    (back_in_time,) = tracks.follow([box + 30], [chip], 9.5)
    assert back_in_time is not first
    tracks = FaceTracks()
    tracks.follow([box], [chip], 0.0)[0].embed_as(0)
    tracks.settle([{"embedding": "e"}])
    assert tracks.follow([box], [other], 0.5)[0].known is None  # another face, same place
    assert tracks.follow([box], [chip], 3.0)[0].known is None  # too long since it was seen
    tracks.follow([box], [chip], 3.5)[0].embed_as(7)  # its batch fails before settle
    tracks.drop_unsettled()
    assert tracks.tracks == []
