"""Scenes tagged from their sampled frames, and scenes grouped into sections (pure).

The rule (also in docs/models.md):

1. A scene's tag probabilities are the mean over the frames sampled inside it (the frame
   nearest its middle when none was). Its tag is the most probable one, or ``unclassified``
   below the probability floor.
2. Scenes with the same tag form one section. Touching scenes merge into one time segment, so
   a section may have several non-adjacent segments.
3. A section's ``confidence`` is its scenes' tag probability weighted by duration.
   ``thumbnail_timestamp`` is the sampled frame where the tag was most probable.
   ``relative_activity`` is the mean frame activity inside the section divided by that of the
   most active section.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNCLASSIFIED = "unclassified"


@dataclass
class TaggedFrame:
    timestamp: float
    tags: dict[str, float]


@dataclass
class SceneTag:
    start: float
    end: float
    tag: str
    probability: float
    best_timestamp: float


@dataclass
class SectionBuilder:
    tag: str
    segments: list[list[float]] = field(default_factory=list)
    weighted: float = 0.0
    duration: float = 0.0
    best: tuple[float, float] = (-1.0, 0.0)  # (probability, timestamp)


def tag_scenes(
    frames: list[TaggedFrame], scenes: list[tuple[float, float]], floor: float
) -> list[SceneTag]:
    tagged = []
    for start, end in scenes:
        inside = [f for f in frames if start <= f.timestamp < end]
        if not inside and frames:
            middle = (start + end) / 2
            inside = [min(frames, key=lambda f: abs(f.timestamp - middle))]
        totals: dict[str, float] = {}
        for frame in inside:
            for tag, p in frame.tags.items():
                totals[tag] = totals.get(tag, 0.0) + p
        if not totals:
            tagged.append(SceneTag(start, end, UNCLASSIFIED, 0.0, start))
            continue
        tag, total = max(totals.items(), key=lambda kv: kv[1])
        probability = total / len(inside)
        best = max(inside, key=lambda f: f.tags.get(tag, 0.0))
        if probability < floor:
            tag = UNCLASSIFIED
        tagged.append(SceneTag(start, end, tag, probability, best.timestamp))
    return tagged


def mean_activity(activity: list[float], interval: float, start: float, end: float) -> float:
    """Mean of the activity values whose later frame lies in ``[start, end)``."""
    if not activity or interval <= 0:
        return 0.0
    first = max(0, int(start / interval + 1e-9) - 1)
    last = min(len(activity), int(end / interval + 1e-9))
    values = activity[first:last]
    return sum(values) / len(values) if values else 0.0


def group_sections(
    scenes: list[SceneTag],
    activity: list[float],
    activity_interval: float,
    critical: set[str],
) -> list[dict]:
    builders: dict[str, SectionBuilder] = {}
    for scene in scenes:
        b = builders.setdefault(scene.tag, SectionBuilder(scene.tag))
        if b.segments and abs(b.segments[-1][1] - scene.start) < 1e-6:
            b.segments[-1][1] = scene.end
        else:
            b.segments.append([scene.start, scene.end])
        span = scene.end - scene.start
        b.weighted += scene.probability * span
        b.duration += span
        if scene.probability > b.best[0]:
            b.best = (scene.probability, scene.best_timestamp)
    activities = {
        tag: _duration_weighted_activity(b, activity, activity_interval)
        for tag, b in builders.items()
    }
    peak = max(activities.values(), default=0.0)
    return [
        {
            "section_tag": tag,
            "time_segments": [{"start_seconds": s, "end_seconds": e} for s, e in b.segments],
            "thumbnail_timestamp": b.best[1],
            "confidence": round(min(1.0, b.weighted / b.duration) if b.duration else 0.0, 6),
            "is_critical": tag in critical,
            "relative_activity": round(activities[tag] / peak, 6) if peak > 0 else 0.0,
        }
        for tag, b in builders.items()
    ]


def _duration_weighted_activity(b: SectionBuilder, activity: list[float], interval: float) -> float:
    total = sum(mean_activity(activity, interval, s, e) * (e - s) for s, e in b.segments)
    return total / b.duration if b.duration else 0.0
