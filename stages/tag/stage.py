"""The tag stage: tags for every image, and scenes grouped into tagged sections for videos."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from framewise.config import Settings
from framewise.picture_change import RecentSequences, picture_changed, sequence_of, thumbnail
from schemas.messages import FrameBatch
from stages.spec import StageSpec, VideoContext
from stages.tag.classifier import OnnxClassifier, classifier_card, classifier_paths
from stages.tag.sections import TaggedFrame, group_sections, tag_scenes
from stages.tag.settings import TagSettings

FRAME_FLOOR = 0.01  # per-frame tags below this are not sent to the aggregator


@dataclass(frozen=True)
class Classified:
    """The frame a sequence's tags were last computed on: its thumbnail and shape, its tags."""

    thumbnail: np.ndarray
    shape: tuple[int, ...]
    tags: dict[str, float]


class TagAnalyzer:
    """Tags every detail frame; with ``FRAMEWISE_TAG_REUSE_UNCHANGED`` a video frame whose
    picture did not change since the frame last classified (``framewise/picture_change.py``,
    per segment of a job) repeats its tags. That frame stays the reference while it repeats,
    so a slow change adds up until it is classified again."""

    def __init__(self, settings: Settings) -> None:
        self.classifier = OnnxClassifier(settings).load()
        self.reuse_unchanged = settings.group(TagSettings).reuse_unchanged
        self.classified: RecentSequences[Classified] = RecentSequences()
        self.frames_seen = 0
        self.frames_classified = 0

    def analyze(self, frames: np.ndarray, batch: FrameBatch) -> dict[str, Any]:
        own = frames[batch.context_frames :]
        if self.reuse_unchanged and batch.media_type == "video":
            predictions = self._predict_changed(own, sequence_of(batch))
        else:
            predictions = self.classifier.predict(own, FRAME_FLOOR)
            self.frames_classified += len(own)
        self.frames_seen += len(own)
        return {
            "frames": [
                {"t": t, "tags": tags}
                for t, tags in zip(
                    batch.timestamps[batch.context_frames :], predictions, strict=True
                )
            ]
        }

    def _predict_changed(self, own: np.ndarray, sequence: str) -> list[dict[str, float]]:
        """Each frame's tags, the classifier run only on frames whose picture changed."""
        last = self.classified.get(sequence)
        reference = (last.thumbnail, last.shape) if last is not None else None
        chosen: list[int] = []  # the frames classified
        source: list[int] = []  # each frame's tags: those of chosen[k] (-1: of ``last``)
        thumbs = []
        for i, frame in enumerate(own):
            thumbs.append(thumbnail(frame))
            if (
                reference is None
                or reference[1] != frame.shape
                or picture_changed(reference[0], thumbs[i])
            ):
                chosen.append(i)
                reference = (thumbs[i], frame.shape)
            source.append(len(chosen) - 1)
        found = self.classifier.predict(own[chosen], FRAME_FLOOR) if chosen else []
        self.frames_classified += len(chosen)
        earlier = last.tags if last is not None else {}  # k is -1 only where ``last`` is known
        predictions = [found[k] if k >= 0 else earlier for k in source]
        if chosen:
            last = Classified(thumbs[chosen[-1]], own.shape[1:], found[-1])
        if last is not None:
            self.classified.put(sequence, last)  # also keeps a still sequence among the recent
        return predictions


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
