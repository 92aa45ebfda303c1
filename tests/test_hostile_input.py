"""Hostile input through the real pipeline: decompression bombs, media without video,
oversized ingest messages, secrets in logs, and a schemathesis fuzz of the OpenAPI document."""

from __future__ import annotations

import asyncio
import base64
import struct
import zlib

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from schemas.messages import DeadLetter
from tests.conftest import read_topic

pytestmark = pytest.mark.integration


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims 10 gigapixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_image_fails_alone(pipeline, media):
    good = base64.b64encode((media / "images" / "tags" / "fish.png").read_bytes()).decode()
    with pipeline.client() as client:
        response = client.post(
            "/v1/images",
            json={
                "images": [
                    {"external_id": "bomb", "data_base64": base64.b64encode(png_bomb()).decode()},
                    {"external_id": "fish", "data_base64": good},
                ]
            },
        )
    body = pipeline.wait_job(response.headers["Location"])
    items = {item["external_id"]: item for item in body["items"]}
    assert items["bomb"]["status"] == "failed"
    assert items["bomb"]["error"]["code"] == "unsupported_media"
    assert items["fish"]["status"] == "finished"


def test_media_without_a_video_stream_is_refused(pipeline, tmp_path):
    audio = tmp_path / "tone.wav"
    with av.open(str(audio), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        samples = (np.sin(np.arange(8000) / 10) * 3000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pipeline.client() as client:
        response = client.post(
            "/v1/videos", content=audio.read_bytes(), headers={"Content-Type": "video/mp4"}
        )
    assert response.status_code == 415 and "no video stream" in response.json()["detail"]


def test_oversized_ingest_message_is_dead_lettered(pipeline):
    from aiokafka import AIOKafkaProducer

    big = b'{"job_id": "image_batch_' + b"x" * (2 * 1024 * 1024) + b'"}'

    async def produce():
        producer = AIOKafkaProducer(
            bootstrap_servers=pipeline.bootstrap, max_request_size=4 * 1024 * 1024
        )
        await producer.start()
        await producer.send_and_wait("framewise.ingest.v1", big, key=b"oversized")
        await producer.stop()

    asyncio.run(produce())
    letters = asyncio.run(
        read_topic(pipeline.bootstrap, "framewise.ingest.v1.dlq", b"oversized", 8)
    )
    assert letters, "the oversized message was not dead-lettered"
    assert "exceeds the limit" in DeadLetter.model_validate_json(letters[0].value).reason


def test_webhook_secret_never_reaches_a_log(pipeline, media):
    """A webhook that cannot be delivered is retried, dead-lettered and reported: its secret
    appears in no log of any process."""
    from framewise.broker import free_port

    secret = "never-log-this-s3cret"
    image = base64.b64encode((media / "images" / "tags" / "fish.png").read_bytes()).decode()
    with pipeline.client() as client:
        response = client.post(
            "/v1/images",
            json={
                "images": [{"external_id": "f", "data_base64": image}],
                "webhook": {"url": f"http://127.0.0.1:{free_port()}/hook", "secret": secret},
            },
        )
        location = response.headers["Location"]
        pipeline.wait_job(location)
        for _ in range(100):
            webhook = client.get(location).json().get("webhook") or {}
            if webhook.get("attempts", 0) >= 3:
                break
            asyncio.run(asyncio.sleep(0.2))
    assert webhook["delivered"] is False and webhook["attempts"] == 3
    assert "ConnectError" in webhook["last_error"]
    logs = "".join(path.read_text(errors="replace") for path in pipeline.log_dir.glob("*.log"))
    assert "webhook" in logs and secret not in logs


def test_a_webhook_for_a_job_without_a_kept_body_is_reported_not_sent(pipeline):
    """A delivery names its job, and the webhook worker sends that job's final body as the
    aggregator kept it. One whose job has no kept body (past the retention, or no job of
    ours) is attempted nowhere and reported with the reason."""
    import time

    from aiokafka import AIOKafkaProducer

    from framewise import keys, topics
    from framewise.kafka import to_bytes
    from schemas.messages import WebhookDelivery, WebhookOutcome

    job_id = "video_without_a_kept_body_01"
    delivery = WebhookDelivery(
        job_id=job_id,
        delivery_id=f"evt_{job_id}_finished",
        url="http://127.0.0.1:9/hook",
        created_at=time.time(),
    )

    async def produce():
        producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap)
        await producer.start()
        await producer.send_and_wait(
            topics.WEBHOOKS.name, to_bytes(delivery), key=keys.job_key(job_id)
        )
        await producer.stop()

    asyncio.run(produce())
    events = asyncio.run(
        read_topic(pipeline.bootstrap, topics.JOB_EVENTS.name, keys.job_key(job_id), 10)
    )
    assert events, "no webhook outcome was reported"
    outcome = WebhookOutcome.model_validate_json(events[-1].value)
    assert (outcome.delivered, outcome.attempts) == (False, 0)
    assert outcome.last_error == "the job's body is not stored"


def test_query_string_secrets_never_reach_the_access_log(pipeline, test_video):
    """`webhook.secret` (and a token inside `webhook.url`) travel in the query string of a
    video upload: the API's access log names the parameters, never their values."""
    secret, token = "canary-s3cret-in-query", "canary-url-token"
    with pipeline.client() as client:
        response = client.post(
            "/v1/videos",
            content=test_video.read_bytes(),
            params={"webhook.url": f"https://example.org/hook/{token}", "webhook.secret": secret},
            headers={"Content-Type": "video/mp4"},
        )
    assert response.status_code == 202, response.text
    pipeline.wait_job(response.headers["Location"], timeout=180)
    logs = "".join(path.read_text(errors="replace") for path in pipeline.log_dir.glob("*.log"))
    assert "webhook.secret=[redacted]" in logs
    assert secret not in logs and token not in logs


def test_fuzzing_the_openapi_document_finds_no_server_error(pipeline):
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{pipeline.url}/openapi.json")
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            response = case.call(base_url=pipeline.url, timeout=30)
            if response.status_code >= 500:
                failures.append(
                    (case.method, case.formatted_path, response.status_code, response.text[:200])
                )

        check()
    assert failures == []


def test_hanging_webhook_receivers_do_not_delay_others(pipeline):
    """Eight jobs whose webhook target never answers, then one whose target does: its webhook
    arrives promptly after its job ends (at most two deliveries per target are in flight)."""
    import http.server
    import threading
    import time

    import cv2
    import numpy as np

    from framewise.broker import free_port

    arrived: list[float] = []

    class Hanging(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            time.sleep(30)

        def log_message(self, *args):
            pass

    class Live(Hanging):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            arrived.append(time.monotonic())
            self.send_response(204)
            self.end_headers()

    servers = []
    for handler in (Hanging, Live):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    hanging, live = (f"http://127.0.0.1:{s.server_address[1]}/hook" for s in servers)
    tiny = base64.b64encode(cv2.imencode(".png", np.full((8, 8, 3), 90, np.uint8))[1]).decode()

    def submit(url: str) -> str:
        body = {"images": [{"external_id": "x", "data_base64": tiny}], "webhook": {"url": url}}
        with pipeline.client() as client:
            return client.post("/v1/images", json=body).headers["Location"]

    try:
        stuck = [submit(hanging) for _ in range(8)]
        for location in stuck:
            pipeline.wait_job(location)
        time.sleep(1.0)  # their deliveries are now hanging
        location = submit(live)
        pipeline.wait_job(location)
        ended = time.monotonic()
        deadline = ended + 20
        while not arrived and time.monotonic() < deadline:
            time.sleep(0.1)
        assert arrived, "the live receiver's webhook never arrived"
        assert arrived[0] - ended < 5.0, f"arrived {arrived[0] - ended:.1f} s after the job ended"
    finally:
        for server in servers:
            server.shutdown()
