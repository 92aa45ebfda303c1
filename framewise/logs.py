"""Logs that stay readable while something is down: a broker outage makes every Kafka client
report the same failure many times a second, so warnings and errors are let through at most
once per logger and message every ``interval`` seconds, and the next one that passes says how
many were held back."""

from __future__ import annotations

import logging
import sys
import time

LIMITED_FROM = logging.WARNING
INTERVAL_S = 10.0
MAX_KEYS = 10_000


class RateLimited(logging.Filter):
    def __init__(self, interval: float = INTERVAL_S) -> None:
        super().__init__()
        self.interval = interval
        self.seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < LIMITED_FROM:
            return True
        key = (record.name, str(record.msg)[:300])
        now = time.monotonic()
        last, held = self.seen.get(key, (float("-inf"), 0))
        if now - last < self.interval:
            self.seen[key] = (last, held + 1)
            return False
        if len(self.seen) >= MAX_KEYS:
            self.seen.clear()
        self.seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {self.interval:.0f} s]"
        return True


def worker_logging_config(level: str) -> dict:
    """For Faust's worker (mode's logging set-up, merged with its defaults): its console
    handler, rate-limited."""
    return {
        "merge": True,
        "filters": {"rate_limited": {"()": RateLimited}},
        "handlers": {
            "default": {
                "level": level.upper(),
                "class": "colorlog.StreamHandler",
                "formatter": "colored",
                "filters": ["rate_limited"],
            }
        },
    }


def rate_limit_root() -> None:
    """For processes whose libraries log to the root logger without a handler of their own
    (the API's Kafka clients): a rate-limited handler on stderr."""
    root = logging.getLogger()
    if any(isinstance(f, RateLimited) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(levelname)s] %(name)s: %(message)s"))
    handler.addFilter(RateLimited())
    handler.setLevel(LIMITED_FROM)
    root.addHandler(handler)
