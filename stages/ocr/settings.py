"""The OCR stage's settings group: its PP-OCR models, sampling rate and language identification."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OcrSettings(BaseSettings):
    """Each field is the environment variable ``FRAMEWISE_OCR_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="FRAMEWISE_OCR_", extra="ignore", populate_by_name=True
    )

    det_model: str | None = Field(
        None, description="PP-OCR detection ONNX (relative to models_dir); unset: rapidocr's"
    )
    rec_model: str | None = Field(None, description="PP-OCR recognition ONNX; unset: rapidocr's")
    rec_keys: str | None = Field(
        None, description="the recognition model's dictionary, if not embedded in the model"
    )
    det_max_side: int = Field(960, ge=64, description="detector input, longest side")
    fps: float = Field(1.0, gt=0, description="video frames per second the OCR stage reads")
    min_score: float = Field(0.6, ge=0, le=1, description="lines recognised below are dropped")
    angle_classifier: bool = Field(False, description="also read text rotated by 180°")
    languages: list[str] = Field(
        default_factory=lambda: [
            "en",
            "de",
            "fr",
            "es",
            "it",
            "pt",
            "nl",
            "sv",
            "da",
            "nb",
            "fi",
            "pl",
            "cs",
            "ro",
            "hu",
            "tr",
            "ru",
            "uk",
            "el",
            "zh",
            "ja",
            "ko",
            "ar",
            "he",
            "hi",
            "th",
            "vi",
            "id",
            "la",
        ],
        description="ISO 639-1 codes the language identifier chooses from",
    )
    language_confidence: float = Field(
        0.5, ge=0, le=1, description="below this the text's script decides the language"
    )
    reuse_unchanged: bool = Field(
        True,
        description="read a video frame again only where its picture changed since the stage "
        "read it, and recognize only lines whose pixels changed (stages/ocr/reuse.py); false "
        "reads every sampled frame whole",
    )
