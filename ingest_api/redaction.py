"""Secrets never reach a log: the access log shows which query parameters a request had, never
their values (``webhook.secret`` travels in the query string of ``POST /v1/videos``, and a
webhook URL may carry a token of its own)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlsplit

REDACTED = "[redacted]"


def redact_query(target: str) -> str:
    """``/v1/videos?webhook.secret=s3cret`` -> ``/v1/videos?webhook.secret=[redacted]``."""
    parts = urlsplit(target)
    if not parts.query:
        return target
    names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    query = "&".join(f"{name}={REDACTED}" for name in names) or REDACTED
    return f"{parts.path}?{query}"


class RedactQueryStrings(logging.Filter):
    """For uvicorn's access log, whose record arguments are (client, method, target, version,
    status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3:
            args = list(record.args)
            if isinstance(args[2], str):
                args[2] = redact_query(args[2])
                record.args = tuple(args)
        return True


def install() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQueryStrings) for f in access.filters):
        access.addFilter(RedactQueryStrings())
