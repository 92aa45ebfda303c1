"""Which worker processes exist, and the Faust app of each. Each role imports only its own
agents: the webhook worker loads none of the stages' libraries."""

from __future__ import annotations

from framewise.config import Settings

CORE_ROLES = ("decode", "aggregator", "webhook")


def worker_roles(settings: Settings) -> list[str]:
    from stages.registry import active_stages

    return ["decode", *active_stages(settings), "aggregator", "webhook"]


def build_worker_app(role: str, settings: Settings):
    """The Faust app of one worker role."""
    if role == "decode":
        from stages.decode.agent import build_decode_app

        return build_decode_app(settings)
    if role == "aggregator":
        from stages.aggregator.agent import build_aggregator_app

        return build_aggregator_app(settings)
    if role == "webhook":
        from stages.webhook.agent import build_webhook_app

        return build_webhook_app(settings)
    from stages.registry import stages

    known = stages()
    if role not in known:
        raise SystemExit(f"unknown worker {role!r}; choose from {[*CORE_ROLES, *known]}")
    from stages.worker import build_stage_app

    return build_stage_app(known[role], settings)
