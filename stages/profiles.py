"""The sampling profiles decode produces, built from settings (see ``docs/topics.md``)."""

from __future__ import annotations

from framewise.config import Settings
from framewise.media import Profile
from stages.scene.settings import TRANSNET_CONTEXT_FRAMES, SceneSettings

RULES_CONTEXT_SECONDS = 0.6  # the flash check and the half-second drift look this far back
LOWEST_EXACT_FPS = 24  # TransNetV2 gets its full context at this frame rate and above


def motion_context_seconds(settings: Settings) -> float:
    if settings.group(SceneSettings).detector == "transnetv2":
        return max(RULES_CONTEXT_SECONDS, (TRANSNET_CONTEXT_FRAMES + 1) / LOWEST_EXACT_FPS)
    return RULES_CONTEXT_SECONDS


def profiles(settings: Settings) -> dict[str, Profile]:
    return {
        "motion": Profile(
            "motion",
            settings.motion_fps,
            settings.motion_max_side,
            settings.motion_batch_frames,
            context_seconds=motion_context_seconds(settings),
        ),
        "detail": Profile(
            "detail", settings.detail_fps, settings.detail_max_side, settings.detail_batch_frames
        ),
    }
