"""The face stage's settings group: the pack, its detector, and thresholds that override the
pack's calibrated ones."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FaceSettings(BaseSettings):
    """Each field is the environment variable ``FRAMEWISE_FACE_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="FRAMEWISE_FACE_", extra="ignore", populate_by_name=True
    )

    pack: Literal["dlib", "insightface"] = Field(
        "dlib",
        description="face model pack: dlib (default, permissive, installed with framewise) or "
        "insightface (non-commercial; files in models_dir/face_insightface_dir)",
    )
    insightface_dir: str = Field(
        "face", description="insightface pack directory, relative to models_dir"
    )
    detector: str | None = Field(
        None,
        description="dlib pack: blazeface (default), hog or yunet; insightface pack: a "
        "detector file (unset: the largest)",
    )
    blazeface_sides: tuple[int, ...] = Field(
        (128, 256, 640),
        min_length=1,
        description="BlazeFace runs on the frame scaled to each of these long sides (pixels): "
        "128 and 256 find faces that fill the frame, 640 faces from about 25 px in a 1280 px "
        "frame",
    )
    hog_upsample: int = Field(
        1, ge=0, le=2, description="dlib HOG: upsample frames this often (1: faces from ~40 px)"
    )
    yunet_model: str = Field(
        "face/yunet.onnx", description="YuNet file relative to models_dir (face_detector=yunet)"
    )
    det_size: int = Field(640, ge=160, description="SCRFD detector input side")
    det_threshold: float = Field(
        0.5, ge=0, le=1, description="BlazeFace, SCRFD and YuNet score floor"
    )
    min_size: int = Field(16, ge=1, description="smaller faces (pixels) are ignored")
    reuse_seconds: float = Field(
        2.0,
        ge=0,
        description="a video frame whose picture did not change since the frame the job's "
        "faces were last found on, less than this long before, repeats those faces without "
        "running a model; 0 runs the models on every frame",
    )
    track_seconds: float = Field(
        5.0,
        ge=0,
        description="a video face that continues a track (the same face near where it was in "
        "the previous sampled frame) repeats the embedding, age and gender read from the track "
        "for up to this long before they are read again; 0 reads every face",
    )
    batch_size: int = Field(32, ge=1, description="face crops per model call")
    cluster_threshold: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="cosine similarity at which two faces are one person; unset: the pack's",
    )
    gender_confidence: float | None = Field(
        None, ge=0.5, le=1, description="below this gender is `unidentified`; unset: the pack's"
    )
    allowlist_threshold: float | None = Field(
        None,
        validation_alias=AliasChoices("FRAMEWISE_ALLOWLIST_THRESHOLD"),
        ge=-1,
        le=1,
        description="cosine similarity to an enrolled face that matches; unset: the pack's",
    )
