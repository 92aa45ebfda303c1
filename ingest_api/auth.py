"""API keys: accepted keys are configured as sha256 digests (never stored in clear); a job is
visible only to the key that created it."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request

from ingest_api.problems import ProblemError


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id(digest: str) -> str:
    """A short, non-secret name for a key: what job ownership records."""
    return digest[:16]


class ApiKeys:
    def __init__(self, digests: list[str]) -> None:
        self.digests = [d.removeprefix("sha256:").lower() for d in digests]

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    def owner(self, request: Request) -> str | None:
        """The caller's key id; ``None`` when authentication is off. 401 for a bad key."""
        if not self.enabled:
            return None
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else None
        key = key or request.headers.get("x-api-key")
        if key:
            digest = hash_key(key)
            for accepted in self.digests:
                if hmac.compare_digest(digest, accepted):
                    return key_id(accepted)
        raise ProblemError(
            401,
            "Unauthorized",
            "a valid API key is required (Authorization: Bearer <key> or X-API-Key)",
            headers={"WWW-Authenticate": "Bearer"},
        )


def caller(request: Request) -> str | None:
    """The API key id of the request (``None`` with authentication off); 401 otherwise."""
    return request.app.state.api_keys.owner(request)


Owner = Annotated[str | None, Depends(caller)]
