"""The tag stage with the real SqueezeNet model, without Kafka: image tags, roll-up, sections."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from framewise.config import Settings
from stages.tag.classifier import OnnxClassifier, parse_classes
from stages.tag.sections import SceneTag, group_sections
from stages.tag.stage import finalize_image
from tests.conftest import run_video_stages


def settings_for(models, **overrides) -> Settings:
    return Settings(models_dir=models, stages=["scene", "tag"], **overrides)


def rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def direct_probabilities(models, image: np.ndarray) -> np.ndarray:
    """The model called directly, as its card says: BGR, 0..255, float16, 224x224."""
    session = ort.InferenceSession(str(models / "classify" / "squeezenet1.1_fp16.onnx"))
    x = cv2.resize(image, (224, 224))[..., ::-1].transpose(2, 0, 1)[None].astype(np.float16)
    return session.run(None, {"data_0": x})[0].reshape(-1).astype(np.float64)


@pytest.mark.parametrize(
    ("name", "tag", "classes"), [("kitten_224.png", "cat", "281-285"), ("fish.png", "fish", "0-6")]
)
def test_image_is_tagged_with_the_models_own_probabilities(models, media, name, tag, classes):
    image = rgb(media / "images" / "tags" / name)
    settings = settings_for(models)
    tags = OnnxClassifier(settings).load().predict(image[None])[0]
    result = finalize_image({"frames": [{"t": 0.0, "tags": tags}]}, settings)["tags"]
    assert result[0]["tag"] == tag
    expected = direct_probabilities(models, image)
    rolled = expected[parse_classes([classes])].sum() + (
        expected[parse_classes(["389-397"])].sum() if tag == "fish" else 0
    )
    assert result[0]["probability"] == pytest.approx(rolled, abs=2e-3)
    assert [t["probability"] for t in result] == sorted(
        (t["probability"] for t in result), reverse=True
    )


def test_top_k_floor_and_critical_list(models, media):
    settings = settings_for(models, tag_top_k=2, tag_min_probability=0.0, critical_tags=["cat"])
    tags = OnnxClassifier(settings).load().predict(rgb(media / "images" / "faces" / "t1.jpg")[None])
    result = finalize_image({"frames": [{"t": 0.0, "tags": tags[0]}]}, settings)["tags"]
    assert len(result) == 2 and not any(t["is_critical"] for t in result)
    cat = finalize_image({"frames": [{"t": 0, "tags": {"cat": 0.9}}]}, settings)["tags"]
    assert cat == [{"tag": "cat", "probability": 0.9, "is_critical": True}]


def test_video_sections_follow_how_the_video_was_built(models, animals_video):
    settings = settings_for(models, critical_tags=["fish"])
    result = run_video_stages(animals_video, settings)
    starts = [round(s.start_seconds, 1) for s in result.raw_scenes]
    assert starts == [0.0, 3.0, 6.0, 9.0]
    sections = {s.section_tag: s for s in result.sections}
    cat, fish = sections["cat"], sections["fish"]
    assert [(round(t.start_seconds, 1), round(t.end_seconds, 1)) for t in cat.time_segments] == [
        (0.0, 3.0),
        (9.0, 12.0),
    ]
    assert [(round(t.start_seconds, 1), round(t.end_seconds, 1)) for t in fish.time_segments] == [
        (3.0, 6.0)
    ]
    assert fish.is_critical and not cat.is_critical
    assert cat.confidence > 0.9 and fish.confidence > 0.9
    assert 0.0 <= cat.thumbnail_timestamp < 3.0 or 9.0 <= cat.thumbnail_timestamp < 12.0
    assert len(result.sections) == 3  # the group photo is the third section, whatever its tag
    assert all(0 <= s.relative_activity <= 1 for s in result.sections)


def test_sections_merge_touching_scenes_and_weight_confidence():
    scenes = [
        SceneTag(0, 2, "cat", 0.9, 1.0),
        SceneTag(2, 4, "cat", 0.5, 3.0),
        SceneTag(4, 6, "dog", 0.8, 5.0),
        SceneTag(6, 10, "cat", 0.6, 7.0),
    ]
    activity = [0.0] * 19 + [0.5] * 20 + [0.1] * 60  # 10 fps: frames 20..39 (2-4 s) busy
    sections = {s["section_tag"]: s for s in group_sections(scenes, activity, 0.1, {"dog"})}
    cat = sections["cat"]
    assert cat["time_segments"] == [
        {"start_seconds": 0, "end_seconds": 4},
        {"start_seconds": 6, "end_seconds": 10},
    ]
    assert cat["confidence"] == pytest.approx((0.9 * 2 + 0.5 * 2 + 0.6 * 4) / 8)
    assert cat["thumbnail_timestamp"] == 1.0
    assert (
        sections["dog"]["is_critical"]
        and max(s["relative_activity"] for s in sections.values()) == 1.0
    )
