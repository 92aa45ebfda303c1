"""The scene stage's settings group: which shot detector runs (``docs/scenes.md`` compares them)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Frames TransNetV2 needs before each batch: 25 of the previous batch to predict again, with
# 25 more as their context (stages/scene/transnet.py). Here, so that sampling profiles can be
# sized without loading the model's module.
TRANSNET_CONTEXT_FRAMES = 50


class SceneSettings(BaseSettings):
    """Each field is the environment variable ``FRAMEWISE_SCENE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="FRAMEWISE_SCENE_", extra="ignore")

    detector: Literal["rules", "transnetv2"] = Field(
        "rules",
        description="`rules`: classical features (the default: finds every transition in the "
        "synthetic suite, about 10x faster on CPU); `transnetv2`: the learned detector, "
        "installed by `framewise models install`",
    )
    transnet_threshold: float = Field(
        0.5, gt=0, lt=1, description="TransNetV2 transition probability that makes a boundary"
    )
