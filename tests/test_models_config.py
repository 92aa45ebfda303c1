"""Which stages the installed models enable, and `framewise models`."""

from __future__ import annotations

from framewise.cli import main
from framewise.config import Settings


def test_model_stages_follow_what_is_installed(models, face_models, tmp_path):
    assert Settings(models_dir=tmp_path).active_stages == ["scene", "ocr"]
    # The shared models hold detectors but no recognition model: no face stage.
    assert Settings(models_dir=models).active_stages == ["scene", "tag", "ocr"]
    assert Settings(models_dir=face_models).active_stages == ["scene", "tag", "ocr", "face"]
    assert Settings(models_dir=face_models, stages=["scene"]).active_stages == ["scene"]


def test_models_command_lists_roles(face_models, models, monkeypatch, capsys):
    monkeypatch.setenv("FRAMEWISE_MODELS_DIR", str(face_models))
    from framewise.config import get_settings

    get_settings.cache_clear()
    try:
        assert main(["models"]) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert "face detector (SCRFD)" in out and "face recognition (ArcFace)" in out
    assert "face gender/age" in out and "enabled stages: scene, tag, ocr, face" in out
