"""Which worker processes exist, and the Faust app of each."""

from __future__ import annotations

from framewise.config import Settings
from stages.aggregator.agent import build_aggregator_app
from stages.decode.agent import build_decode_app
from stages.registry import active_stages, stages
from stages.webhook.agent import build_webhook_app
from stages.worker import build_stage_app

CORE_ROLES = ("decode", "aggregator", "webhook")


def worker_roles(settings: Settings) -> list[str]:
    return ["decode", *active_stages(settings), "aggregator", "webhook"]


def build_worker_app(role: str, settings: Settings):
    """The Faust app of one worker role."""
    if role == "decode":
        return build_decode_app(settings)
    if role == "aggregator":
        return build_aggregator_app(settings)
    if role == "webhook":
        return build_webhook_app(settings)
    known = stages()
    if role not in known:
        raise SystemExit(f"unknown worker {role!r}; choose from {[*CORE_ROLES, *known]}")
    return build_stage_app(known[role], settings)
