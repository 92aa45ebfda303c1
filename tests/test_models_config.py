"""Which stages the installed models enable, and `framewise models`."""

from __future__ import annotations

from framewise.config import Settings
from launcher.cli import main
from stages.face.settings import FaceSettings
from stages.registry import active_stages


def test_model_stages_follow_what_is_installed(face_models, tmp_path):
    # The default install brings the classifier and the face pack, whatever
    # FRAMEWISE_MODELS_DIR holds.
    assert active_stages(Settings(models_dir=tmp_path)) == ["scene", "tag", "ocr", "face"]
    insightface_pack = FaceSettings(pack="insightface")
    nothing = Settings(models_dir=tmp_path, builtin_models_dir=tmp_path / "none").with_groups(
        insightface_pack
    )
    assert active_stages(nothing) == ["scene", "ocr"]
    insightface = Settings(models_dir=face_models).with_groups(insightface_pack)
    assert active_stages(insightface) == ["scene", "tag", "ocr", "face"]
    assert active_stages(Settings(models_dir=face_models, stages=["scene"])) == ["scene"]


def test_models_command_lists_roles_and_licenses(face_models, monkeypatch, capsys):
    monkeypatch.setenv("FRAMEWISE_MODELS_DIR", str(face_models))
    monkeypatch.delenv("FRAMEWISE_FACE_PACK", raising=False)
    from framewise.config import get_settings

    get_settings.cache_clear()
    try:
        assert main(["models"]) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert "tag classifier: EfficientNet-Lite0" in out and "license Apache-2.0" in out
    assert "face embedding: dlib_face_recognition_resnet_model_v1" in out
    assert "face age and gender: Cydral" in out and "license CC0-1.0" in out
    assert "face pack dlib (active): every file allows commercial use" in out
    assert "face pack insightface: NOT for commercial use" in out
    # Files under FRAMEWISE_MODELS_DIR are described by their signature.
    assert "face detector (SCRFD)" in out and "face recognition (ArcFace)" in out
    assert "face gender/age" in out and "enabled stages: scene, tag, ocr, face" in out
