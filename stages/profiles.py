"""The sampling profiles decode produces, built from settings (see ``docs/topics.md``)."""

from __future__ import annotations

from framewise.config import Settings
from framewise.media import Profile


def profiles(settings: Settings) -> dict[str, Profile]:
    return {
        "motion": Profile(
            "motion",
            settings.motion_fps,
            settings.motion_max_side,
            settings.motion_batch_frames,
            context_seconds=0.6,
        ),
        "detail": Profile(
            "detail", settings.detail_fps, settings.detail_max_side, settings.detail_batch_frames
        ),
    }
