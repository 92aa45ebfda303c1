"""The face packs by name, and the thresholds in force (the pack's, or the settings')."""

from __future__ import annotations

from framewise.config import Settings
from stages.face import dlib_pack, insightface_pack
from stages.face.pack import FacePack, PackThresholds
from stages.face.settings import FaceSettings

PACKS: dict[str, type[FacePack]] = {
    "dlib": dlib_pack.DlibPack,
    "insightface": insightface_pack.InsightFacePack,
}


def make_pack(settings: Settings) -> FacePack:
    """The configured pack, not yet loaded."""
    return PACKS[settings.group(FaceSettings).pack](settings)


def thresholds(settings: Settings) -> PackThresholds:
    face = settings.group(FaceSettings)
    calibrated = PACKS[face.pack].thresholds
    return PackThresholds(
        cluster=_either(face.cluster_threshold, calibrated.cluster),
        allowlist=_either(face.allowlist_threshold, calibrated.allowlist),
        gender_confidence=_either(face.gender_confidence, calibrated.gender_confidence),
    )


def installed(settings: Settings) -> bool:
    face = settings.group(FaceSettings)
    if face.pack == "insightface":
        return insightface_pack.installed(settings.model_path(face.insightface_dir))
    return dlib_pack.installed(settings)


def _either(value: float | None, default: float) -> float:
    return default if value is None else value
