"""Webhook delivery: signing, refusal of internal targets, retries with backoff and jitter.

Signatures (see ``docs/webhooks.md``):

* ``X-Webhook-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
* Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<t>.<body>")>``, where the key of a
  ``whsec_<base64>`` secret is its decoded bytes (the spec's rule) and of any other secret
  its UTF-8 bytes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

RETRY_STATUSES = {408, 425, 429} | set(range(500, 600))
WHSEC_PREFIX = "whsec_"


class TargetRefused(Exception):
    """The webhook URL points at an address we must not call (loopback, private, metadata)."""


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks signing key: a ``whsec_<base64>`` secret is those key bytes, as
    the spec and its reference libraries read it; any other secret is its own UTF-8 bytes."""
    if secret.startswith(WHSEC_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(WHSEC_PREFIX), validate=True)
        except binascii.Error:
            pass  # not base64 after all: the whole string is the key
    return secret.encode()


def sign(secret: str, delivery_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    legacy = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    mac = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    standard = base64.b64encode(mac).decode()
    return {
        "X-Webhook-Signature": f"t={timestamp},v1={legacy}",
        "webhook-signature": f"v1,{standard}",
    }


def verify_signature(
    secret: str, header: str, body: bytes, tolerance_s: int = 300, now: float | None = None
) -> bool:
    """Receiver side of ``X-Webhook-Signature`` (also used by our tests and docs)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts.get("v1", ""))


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def resolve_target(url: str, allow_private: bool) -> tuple[str, int, str]:
    """Resolve once and check every address; the request then goes to that address, so a
    second DNS answer (rebinding) cannot redirect it. Returns (host, port, pinned ip)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot resolve {parts.hostname}: {exc}") from exc
    addresses = [info[4][0] for info in infos]
    if not allow_private:
        internal = [a for a in addresses if _is_internal(a)]
        if internal:
            raise TargetRefused(
                f"{parts.hostname} resolves to non-public address {internal[0]}; "
                "set FRAMEWISE_WEBHOOK_ALLOW_PRIVATE=true to allow it"
            )
    return parts.hostname, port, addresses[0]


@dataclass
class DeliveryResult:
    delivered: bool
    attempts: int
    last_error: str | None


@dataclass
class WebhookSender:
    allow_private: bool
    max_attempts: int
    backoff_s: float
    backoff_max_s: float
    timeout_s: float

    def backoff(self, attempt: int) -> float:
        """Exponential with full jitter: uniform in [base/2, base], base doubling per attempt."""
        base = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
        return random.uniform(base / 2, base)

    async def attempt(
        self, url: str, delivery_id: str, body: bytes, secret: str | None
    ) -> tuple[bool, bool, str | None]:
        """One POST. Returns (delivered, worth retrying, error)."""
        try:
            host, _port, ip = await asyncio.to_thread(resolve_target, url, self.allow_private)
        except TargetRefused as exc:
            return False, False, str(exc)
        except ConnectionError as exc:
            return False, True, str(exc)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "framewise-webhook/1",
            "X-Webhook-Id": delivery_id,
            "webhook-id": delivery_id,
            "webhook-timestamp": str(timestamp),
            "Host": urlsplit(url).netloc,
        }
        if secret:
            headers.update(sign(secret, delivery_id, timestamp, body))
        pinned = httpx.URL(url).copy_with(host=ip)
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client:
                response = await client.post(
                    pinned, content=body, headers=headers, extensions={"sni_hostname": host}
                )
        except httpx.HTTPError as exc:
            return False, True, f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return True, False, None
        error = f"HTTP {response.status_code}"
        if 300 <= response.status_code < 400:
            return False, False, error + " (redirects are not followed)"
        return False, response.status_code in RETRY_STATUSES, error

    async def deliver(
        self,
        url: str,
        delivery_id: str,
        body: bytes,
        secret: str | None,
        made: int = 0,
        on_attempt: Callable[[int], Awaitable[None]] | None = None,
    ) -> DeliveryResult:
        """Attempt until delivered, refused or out of attempts. ``made`` attempts were made
        before (by a worker that died): they count, in the result and against the limit;
        ``on_attempt`` records each new one durably first."""
        error = "no attempts left" if made >= self.max_attempts else None
        for attempt in range(made + 1, self.max_attempts + 1):
            if on_attempt is not None:
                await on_attempt(attempt)
            delivered, retry, error = await self.attempt(url, delivery_id, body, secret)
            if delivered:
                return DeliveryResult(True, attempt, None)
            if not retry or attempt == self.max_attempts:
                return DeliveryResult(False, attempt, error)
            await asyncio.sleep(self.backoff(attempt))
        return DeliveryResult(False, self.max_attempts, error)
