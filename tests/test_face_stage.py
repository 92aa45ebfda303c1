"""The insightface pack (``FRAMEWISE_FACE_PACK=insightface``) without Kafka: the real SCRFD
detector from ../shared/models/face, and recognition/genderage stand-ins with the real
signatures (tests/face_standins.py), for the 512-d path the default pack cannot reach. Loading,
alignment, batching, clustering, allowlist matching and every result field run for real;
identity, age and gender accuracy are not tested here (the stand-ins are untrained; see
tests/test_face_default_pack.py for the real models)."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from framewise.config import Settings
from schemas.api import Person
from schemas.messages import AllowlistRecord, FrameBatch
from stages.face.analyzer import FaceAnalyzer
from stages.face.embedding import encode_embedding
from stages.face.insightface_pack import InsightFacePack
from stages.face.settings import FaceSettings
from stages.face.stage import finalize_image
from stages.local import image_frame_batch, run_video_stages


def settings(face_models, tmp_path, **face) -> Settings:
    """The insightface pack in ``face_models``, with ``face`` settings of its group."""
    return Settings(
        models_dir=face_models, data_dir=tmp_path, stages=["scene", "face"]
    ).with_groups(FaceSettings(pack="insightface", **face))


def image_batch(image: np.ndarray) -> tuple[np.ndarray, FrameBatch]:
    return image[None], image_frame_batch("face")


def rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize(("name", "count"), [("t1.jpg", 6), ("mask_blue.jpg", 0)])
def test_real_detector_finds_every_face_and_no_false_one(face_models, media, tmp_path, name, count):
    pack = InsightFacePack(settings(face_models, tmp_path)).load()
    assert len(pack.detect(rgb(media / "images" / "faces" / name))) == count


def test_every_person_field_for_an_image(face_models, media, tmp_path):
    s = settings(face_models, tmp_path)
    analyzer = FaceAnalyzer(s)
    payload = analyzer.analyze(*image_batch(rgb(media / "images" / "faces" / "t1.jpg")))
    persons = [Person.model_validate(p) for p in finalize_image(payload, s)["person_ids"]]
    assert len(persons) == 6
    assert len({p.person_id for p in persons}) == 6
    assert max(p.relative_prominence for p in persons) == 1.0
    for person in persons:
        vector = np.asarray(person.face_embedding)
        assert vector.shape == (512,) and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-3)
        assert person.gender in ("male", "female", "unidentified")
        assert person.age is not None and person.age >= 0
        jpeg = base64.b64decode(person.face_thumbnail, validate=True)
        assert not person.face_thumbnail.startswith("data:")
        thumb = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert thumb.shape == (112, 112, 3)
        assert person.allowlisted is False
    none = analyzer.analyze(*image_batch(rgb(media / "images" / "faces" / "mask_blue.jpg")))
    assert finalize_image(none, s)["person_ids"] == []


def test_batched_crops_give_the_same_embeddings(face_models, media, tmp_path):
    pack = InsightFacePack(settings(face_models, tmp_path, batch_size=4)).load()
    image = rgb(media / "images" / "faces" / "t1.jpg")
    faces = pack.align(image, pack.detect(image))
    together = pack.embed(faces)
    one_by_one = np.concatenate([pack.embed([f]) for f in faces])
    assert together.shape == (6, 512) and pack.embedding_size == 512
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    assert len(pack.attributes(image, faces)) == 6


def test_same_person_in_two_separate_scenes_has_one_id(face_models, faces_video, tmp_path):
    result = run_video_stages(faces_video, settings(face_models, tmp_path))
    scenes = result.person_constellation_scenes
    assert [round(s.time_segment.start_seconds) for s in scenes] == [0, 3, 6]
    first, middle, last = ({p.person_id for p in s.person_ids} for s in scenes)
    assert len(first) == 6 and middle == set() and last == first


def test_allowlisted_person_is_matched(face_models, media, tmp_path):
    # The untrained stand-in puts different faces up to 0.8 apart in cosine, so this test uses
    # a strict threshold: it checks the matching logic, not ArcFace's discrimination.
    s = settings(face_models, tmp_path, allowlist_threshold=0.97)
    analyzer = FaceAnalyzer(s)
    image = rgb(media / "images" / "faces" / "t1.jpg")
    detections = analyzer.pack.detect(image)
    enrolled = max(detections, key=lambda d: d.bbox[2] - d.bbox[0])
    vector = analyzer.pack.embed(analyzer.pack.align(image, [enrolled]))[0]
    analyzer.allowlist.apply(
        "identity_a",
        AllowlistRecord(
            identity_id="identity_a",
            label="A",
            status="enrolled",
            embeddings=[encode_embedding(vector)],
            created_at="2026-01-01T00:00:00Z",
        ),  # no face_pack: written before packs were recorded, so insightface's
    )
    payload = analyzer.analyze(*image_batch(image))
    persons = finalize_image(payload, s)["person_ids"]
    assert sum(p["allowlisted"] for p in persons) == 1
    analyzer.allowlist.apply("identity_a", None)
    payload = analyzer.analyze(*image_batch(image))
    assert not any(p["allowlisted"] for p in finalize_image(payload, s)["person_ids"])
