"""The tag stage: tags for every image, and scenes grouped into tagged sections for videos."""

from __future__ import annotations

from typing import Any

import numpy as np

from framewise.config import Settings
from schemas.messages import FrameBatch
from stages.spec import StageSpec, VideoContext
from stages.tag.classifier import OnnxClassifier, classifier_card, classifier_paths
from stages.tag.sections import TaggedFrame, group_sections, tag_scenes
from stages.tag.settings import TagSettings

FRAME_FLOOR = 0.01  # per-frame tags below this are not sent to the aggregator


class TagAnalyzer:
    def __init__(self, settings: Settings) -> None:
        self.classifier = OnnxClassifier(settings).load()

    def analyze(self, frames: np.ndarray, batch: FrameBatch) -> dict[str, Any]:
        own = frames[batch.context_frames :]
        predictions = self.classifier.predict(own, FRAME_FLOOR)
        return {
            "frames": [
                {"t": t, "tags": tags}
                for t, tags in zip(
                    batch.timestamps[batch.context_frames :], predictions, strict=True
                )
            ]
        }


def finalize_image(payload: dict[str, Any], settings: Settings) -> dict[str, Any]:
    tags = payload["frames"][0]["tags"] if payload.get("frames") else {}
    tag = settings.group(TagSettings)
    critical = set(tag.critical_tags)
    ranked = sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = [(t, p) for t, p in ranked if p >= tag.min_probability][: tag.top_k]
    return {"tags": [{"tag": t, "probability": p, "is_critical": t in critical} for t, p in kept]}


def finalize_video(ctx: VideoContext, settings: Settings) -> dict[str, Any]:
    tag = settings.group(TagSettings)
    frames = [TaggedFrame(f["t"], f["tags"]) for payload in ctx.payloads for f in payload["frames"]]
    tagged = tag_scenes(sorted(frames, key=lambda f: f.timestamp), ctx.shots(), tag.min_probability)
    interval = 1.0 / ctx.analysed_fps if ctx.analysed_fps else 0.0
    sections = group_sections(
        tagged, ctx.result.get("frame_activity_diffs", []), interval, set(tag.critical_tags)
    )
    return {"sections": sections}


TAG = StageSpec(
    name="tag",
    profile="detail",
    media_types=frozenset({"video", "image"}),
    make_analyzer=TagAnalyzer,
    requires=("scene",),
    finalize_video=finalize_video,
    finalize_image=finalize_image,
    installed=lambda settings: all(path.is_file() for path in classifier_paths(settings)),
    models=lambda settings: [(classifier_card(settings).model, classifier_paths(settings)[0])],
)
