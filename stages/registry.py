"""The list of stages the pipeline runs, in the order the aggregator finalises them.

Adding a stage means writing its :class:`~stages.spec.StageSpec` and adding it to
:data:`STAGES`; neither the decode worker, the aggregator nor the configuration changes.
"""

from __future__ import annotations

from framewise.config import Settings
from stages.face.stage import FACE
from stages.ocr.stage import OCR
from stages.scene.stage import SCENE
from stages.spec import StageSpec
from stages.tag.stage import TAG

STAGES = (SCENE, TAG, OCR, FACE)


def in_dependency_order(specs: tuple[StageSpec, ...]) -> dict[str, StageSpec]:
    """Every stage after the stages it ``requires``; raises on an unknown or circular need."""
    known = {spec.name: spec for spec in specs}
    ordered: dict[str, StageSpec] = {}

    def visit(spec: StageSpec, path: tuple[str, ...]) -> None:
        if spec.name in ordered:
            return
        if spec.name in path:
            raise ValueError(f"stages require each other in a circle: {[*path, spec.name]}")
        for name in spec.requires:
            if name not in known:
                raise ValueError(f"stage {spec.name!r} requires unknown stage {name!r}")
            visit(known[name], (*path, spec.name))
        ordered[spec.name] = spec

    for spec in specs:
        visit(spec, ())
    return ordered


_ORDERED = in_dependency_order(STAGES)


def stages() -> dict[str, StageSpec]:
    """Every stage by name, each after the stages it requires."""
    return _ORDERED


def active_stages(settings: Settings) -> list[str]:
    """``FRAMEWISE_STAGES``, or every stage whose models are installed, in registry order."""
    known = stages()
    if settings.stages is None:
        return [name for name, spec in known.items() if spec.installed(settings)]
    unknown = [name for name in settings.stages if name not in known]
    if unknown:
        raise ValueError(f"FRAMEWISE_STAGES names unknown stages {unknown}; known: {list(known)}")
    return [name for name in known if name in settings.stages]


def enabled_stages(settings: Settings, media_type: str) -> list[StageSpec]:
    known = stages()
    return [
        known[name] for name in active_stages(settings) if media_type in known[name].media_types
    ]
