"""The tag stage's settings group: its classifier, the roll-up, image tags and the critical list."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TagSettings(BaseSettings):
    """Each field is the environment variable ``FRAMEWISE_TAG_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="FRAMEWISE_TAG_", extra="ignore", populate_by_name=True
    )

    classifier: Literal["efficientnet-lite0", "squeezenet1.1", "custom"] = Field(
        "efficientnet-lite0",
        description="classifier card (docs/models.md); the TAG_* settings below override it",
    )
    model: str | None = Field(
        None, description="classifier ONNX relative to models_dir; unset: the card's"
    )
    labels: str | None = Field(None, description="`index,label` lines; unset: the card's")
    taxonomy: Path | None = Field(None, description="tag roll-up JSON; unset: built-in")
    input_size: int | None = Field(None, ge=16)
    channel_order: Literal["RGB", "BGR"] | None = None
    pixel_scale: float | None = Field(
        None, description="pixels are multiplied by this (1/255: 0..1)"
    )
    mean: list[float] | None = None
    std: list[float] | None = None
    output: Literal["probabilities", "logits"] | None = None
    min_probability: float = Field(0.1, ge=0, le=1, description="tags below are dropped")
    reuse_unchanged: bool = Field(
        True,
        description="a video frame whose picture did not change since the frame last classified "
        "repeats its tags without running the classifier; false classifies every frame",
    )
    top_k: int = Field(5, ge=1)
    critical_tags: list[str] = Field(
        default_factory=lambda: ["weapon"],
        validation_alias=AliasChoices("FRAMEWISE_CRITICAL_TAGS"),
        description="tags reported with is_critical=true (JSON list; [] for none)",
    )
