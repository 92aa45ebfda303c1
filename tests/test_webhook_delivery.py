"""Webhook delivery against real local HTTP servers: signatures, retries, refused targets."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from typing import ClassVar

import pytest

from framewise.broker import free_port
from stages.webhook.delivery import (
    TargetRefused,
    WebhookSender,
    resolve_target,
    sign,
    verify_signature,
)


def sender(allow_private: bool, attempts: int = 3) -> WebhookSender:
    return WebhookSender(allow_private, attempts, backoff_s=0.05, backoff_max_s=0.2, timeout_s=2)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost/hook",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[fd00:ec2::254]/",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
    ],
)
def test_internal_targets_are_refused(url):
    with pytest.raises(TargetRefused):
        resolve_target(url, allow_private=False)


def test_refusal_is_final_and_reported():
    result = asyncio.run(sender(False).deliver("http://127.0.0.1:9/x", "id1", b"{}", None))
    assert not result.delivered and result.attempts == 1 and "non-public" in result.last_error


def test_signature_round_trip_and_tolerance():
    headers = sign("k", "evt_1", int(time.time()), b'{"a":1}')
    assert verify_signature("k", headers["X-Webhook-Signature"], b'{"a":1}')
    assert not verify_signature("k", headers["X-Webhook-Signature"], b'{"a":2}')
    old = sign("k", "evt_1", int(time.time()) - 3600, b"{}")
    assert not verify_signature("k", old["X-Webhook-Signature"], b"{}")


def serve(handler_cls) -> tuple[http.server.HTTPServer, int]:
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler_cls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port


class Flaky(http.server.BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        Flaky.calls += 1
        self.send_response(500 if Flaky.calls < 3 else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


class Redirecting(Flaky):
    def do_POST(self):
        self.send_response(302)
        self.send_header("Location", "http://169.254.169.254/")
        self.end_headers()


def test_retries_on_5xx_then_delivers():
    server, port = serve(Flaky)
    try:
        result = asyncio.run(
            sender(True, attempts=5).deliver(f"http://127.0.0.1:{port}/", "evt", b"{}", "s")
        )
    finally:
        server.shutdown()
    assert result.delivered and result.attempts == 3


def test_gives_up_after_max_attempts_and_never_follows_redirects():
    server, port = serve(Redirecting)
    try:
        result = asyncio.run(sender(True).deliver(f"http://127.0.0.1:{port}/", "e", b"{}", None))
    finally:
        server.shutdown()
    assert not result.delivered and "redirect" in result.last_error
    unreachable = asyncio.run(
        sender(True).deliver(f"http://127.0.0.1:{free_port()}/", "e", b"{}", None)
    )
    assert not unreachable.delivered and unreachable.attempts == 3


class SlowOnce(Flaky):
    """Answers the first request only after the sender's timeout, then at once."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        SlowOnce.calls += 1
        if SlowOnce.calls == 1:
            time.sleep(3)
        self.send_response(200)
        self.end_headers()


def test_slow_receiver_times_out_and_is_retried():
    SlowOnce.calls = 0
    server, port = serve(SlowOnce)
    try:
        slow = WebhookSender(True, 3, backoff_s=0.05, backoff_max_s=0.2, timeout_s=0.5)
        result = asyncio.run(slow.deliver(f"http://127.0.0.1:{port}/", "evt", b"{}", None))
    finally:
        server.shutdown()
    assert result.delivered and result.attempts == 2


def test_dns_answer_is_pinned_against_rebinding(monkeypatch):
    """The name is resolved once per attempt and the request goes to that address: a second,
    different answer (127.0.0.2, where nothing listens) is never used."""
    import socket

    server, port = serve(Flaky)
    Flaky.calls = 2  # answer 200 at once
    answers = iter(["127.0.0.1", "127.0.0.2", "127.0.0.2"])
    calls = []

    def rebinding_getaddrinfo(host, port_, *args, **kwargs):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port_))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    try:
        result = asyncio.run(
            sender(True).deliver(f"http://hooks.example:{port}/", "e", b"{}", None)
        )
    finally:
        server.shutdown()
    assert result.delivered and calls == ["hooks.example"]


class Verifying(http.server.BaseHTTPRequestHandler):
    """A receiver that checks the Standard Webhooks signature with the reference library."""

    secret = ""
    verified: ClassVar[list[bool]] = []

    def do_POST(self):
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError

        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            Webhook(Verifying.secret).verify(body, dict(self.headers.items()))
            Verifying.verified.append(True)
            self.send_response(204)
        except WebhookVerificationError:
            Verifying.verified.append(False)
            self.send_response(401)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    "secret", ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_" + "c2VjcmV0LWtleS1ieXRlcw=="]
)
def test_a_standard_webhooks_receiver_verifies_our_signature(secret):
    """The reference `standardwebhooks` library, given the secret we were given, verifies."""
    pytest.importorskip("standardwebhooks")
    Verifying.secret, Verifying.verified = secret, []
    server, port = serve(Verifying)
    try:
        result = asyncio.run(
            sender(True).deliver(f"http://127.0.0.1:{port}/", "evt_abc", b'{"a": 1}', secret)
        )
    finally:
        server.shutdown()
    assert Verifying.verified == [True] and result.delivered and result.attempts == 1


class Hanging(http.server.BaseHTTPRequestHandler):
    """A receiver that never answers in time."""

    def do_POST(self):
        time.sleep(3)

    def log_message(self, *args):
        pass


class Quick(Flaky):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()


def test_hanging_receivers_do_not_hold_back_a_live_one():
    """Eight deliveries to a receiver that hangs are in flight when a ninth, to a live
    receiver, arrives: it is delivered at once, because a target gets two places at most."""
    from stages.webhook.scheduler import DeliveryScheduler

    hanging, hanging_port = serve(Hanging)
    quick, quick_port = serve(Quick)
    webhooks = WebhookSender(True, 1, backoff_s=0.05, backoff_max_s=0.1, timeout_s=2)
    done: dict[str, float] = {}

    async def scenario() -> None:
        scheduler = DeliveryScheduler(per_target=2, total=8, backlog=64)
        started = time.monotonic()

        def delivery(url: str, name: str):
            async def run() -> None:
                await webhooks.deliver(url, name, b"{}", None)
                done[name] = time.monotonic() - started

            return run

        for i in range(8):
            url = f"http://127.0.0.1:{hanging_port}/hook"
            await scheduler.submit(url, delivery(url, f"dead{i}"))
        live = f"http://127.0.0.1:{quick_port}/hook"
        await scheduler.submit(live, delivery(live, "live"))
        await scheduler.drain()

    try:
        asyncio.run(scenario())
    finally:
        hanging.shutdown()
        quick.shutdown()
    assert done["live"] < 1.0, done
    assert len(done) == 9 and min(v for k, v in done.items() if k != "live") >= 2.0


def test_attempts_made_before_a_restart_count():
    """A worker that died after two attempts leaves the count: the next makes only the third,
    and reports three; with none left, it makes none."""
    Flaky.calls = -10  # always 500 for this test
    server, port = serve(Flaky)
    recorded: list[int] = []

    async def record(attempt: int) -> None:
        recorded.append(attempt)

    url = f"http://127.0.0.1:{port}/"
    try:
        third = asyncio.run(sender(True, attempts=3).deliver(url, "evt", b"{}", None, 2, record))
        none_left = asyncio.run(sender(True, attempts=3).deliver(url, "evt", b"{}", None, 3))
    finally:
        server.shutdown()
        Flaky.calls = 0
    assert (third.delivered, third.attempts, recorded) == (False, 3, [3])
    assert (none_left.delivered, none_left.attempts) == (False, 3)
