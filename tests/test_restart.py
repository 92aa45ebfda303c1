"""A restart of the whole `framewise up` (embedded broker: memory only) loses nothing that was
accepted: finished jobs stay readable, an interrupted job runs again and finishes, the
allowlist is kept and a webhook still being retried is delivered, all from the journal in the
data directory. A broker that dies under `framewise up` is started again and refilled the same
way."""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from framewise import keys, topics
from framewise.broker import free_port, wait_for_port
from framewise.kafka import to_bytes
from schemas.messages import IngestRequest
from stages.webhook.delivery import verify_signature
from tests.conftest import ROOT, upload_video, wait_for_job

pytestmark = pytest.mark.integration


def start_up(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "launcher.cli", "up"],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_up(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def service_env(
    tmp_path: Path, api_port: int, broker_port: int, stages: list[str], **settings: str
) -> dict[str, str]:
    """``framewise up`` on the embedded broker with its data in ``tmp_path``: every restart
    of it finds the same journal and blob store."""
    env = {
        **os.environ,
        "FRAMEWISE_EMBEDDED_BROKER_PORT": str(broker_port),
        "FRAMEWISE_API_PORT": str(api_port),
        "FRAMEWISE_DATA_DIR": str(tmp_path / "data"),
        "FRAMEWISE_MODELS_DIR": str(tmp_path / "models"),
        "FRAMEWISE_STAGES": json.dumps(stages),
        **{f"FRAMEWISE_{name.upper()}": value for name, value in settings.items()},
    }
    env.pop("FRAMEWISE_KAFKA_BOOTSTRAP", None)
    return env


def test_a_restart_of_everything_loses_nothing_accepted(tmp_path, media, long_video):
    api_port = free_port()
    env = service_env(tmp_path, api_port, free_port(), ["scene", "tag", "face"], partitions="2")
    base, log = f"http://127.0.0.1:{api_port}", tmp_path / "up.log"
    kitten = base64.b64encode((media / "images" / "tags" / "kitten_224.png").read_bytes())
    tom = base64.b64encode((media / "images" / "faces" / "Tom_Hanks_54745.png").read_bytes())
    up = start_up(env, log)
    try:
        wait_for_port("127.0.0.1", api_port, timeout=120)
        with httpx.Client(base_url=base, timeout=30) as client:
            done = client.post(
                "/v1/images",
                json={"images": [{"external_id": "k", "data_base64": kitten.decode()}]},
            ).headers["Location"]
            finished = wait_for_job(base, done, 180)
            assert finished["status"] == "finished"
            identity = client.post(
                "/v1/allowlist", json={"label": "Tom", "images": [{"data_base64": tom.decode()}]}
            ).headers["Location"]
            deadline = time.monotonic() + 120
            while client.get(identity).json()["status"] == "pending":
                assert time.monotonic() < deadline, "the enrolment did not finish"
                time.sleep(0.5)
        interrupted = upload_video(base, long_video)
        wait_for_job(base, interrupted, 120, until=("processing",))
    finally:
        stop_up(up)
    up = start_up(env, log)
    try:
        wait_for_port("127.0.0.1", api_port, timeout=120)
        with httpx.Client(base_url=base, timeout=30) as client:
            again = client.get(done)
            assert again.status_code == 200, log.read_text(errors="replace")[-3000:]
            assert again.json()["items"] == finished["items"]
            kept = client.get(identity).json()
            assert kept["status"] == "enrolled" and kept["label"] == "Tom"
        body = wait_for_job(base, interrupted, 240)
        assert body["status"] == "finished", body
        starts = [round(s["start_seconds"]) for s in body["result"]["raw_scenes"]]
        assert starts == list(range(0, 120, 10))
        assert not list((tmp_path / "data" / "frames").glob("*")), "frames were left behind"
        # The embedded broker dies: `framewise up` starts it again, refills it from the
        # journal, reconnects every process, and the service works on.
        broker = subprocess.run(
            ["pgrep", "-g", str(up.pid), "-f", "tansu"], capture_output=True, text=True
        ).stdout.split()
        assert broker, "no embedded broker found"
        os.kill(int(broker[0]), signal.SIGKILL)
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the service did not come back"
            time.sleep(1.0)
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get(done).json()["items"] == finished["items"]
            after = client.post(
                "/v1/images",
                json={"images": [{"external_id": "k", "data_base64": kitten.decode()}]},
            )
            assert after.status_code == 202, after.text
        assert wait_for_job(base, after.headers["Location"], 180)["status"] == "finished"
        assert "broker | exited" in log.read_text(errors="replace")
    finally:
        stop_up(up)


class Receiver(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_webhook_still_retrying_at_a_restart_is_delivered_after_it(tmp_path, media):
    """The receiver is down while the job finishes and the service restarts; the delivery
    was only on the webhooks topic of a memory-only broker, so the journal must keep it."""
    api_port, hook_port = free_port(), free_port()
    env = service_env(
        tmp_path,
        api_port,
        free_port(),
        ["tag"],
        webhook_allow_private="true",
        webhook_max_attempts="1000",
        webhook_backoff_s="0.2",
        webhook_backoff_max_s="0.5",
    )
    base, log = f"http://127.0.0.1:{api_port}", tmp_path / "up.log"
    kitten = base64.b64encode((media / "images" / "tags" / "kitten_224.png").read_bytes())
    secret = "s3cr3t-for-tests"
    up = start_up(env, log)
    try:
        wait_for_port("127.0.0.1", api_port, timeout=120)
        location = httpx.post(
            f"{base}/v1/images",
            json={
                "images": [{"external_id": "k", "data_base64": kitten.decode()}],
                "webhook": {"url": f"http://127.0.0.1:{hook_port}/hook", "secret": secret},
            },
            timeout=30,
        ).headers["Location"]
        assert wait_for_job(base, location, 180)["status"] == "finished"
        job_id = location.rsplit("/", 1)[-1]
        attempts = tmp_path / "data" / "webhooks" / f"evt_{job_id}_finished.attempts"
        deadline = time.monotonic() + 60
        while not attempts.exists():  # the delivery is being retried: nobody listens yet
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
    finally:
        stop_up(up)
    Receiver.received.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", hook_port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    up = start_up(env, log)
    try:
        deadline = time.monotonic() + 120
        while not Receiver.received:
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        headers, body = Receiver.received[0]
        assert headers["webhook-id"] == f"evt_{job_id}_finished"
        assert verify_signature(secret, headers["X-Webhook-Signature"], body)
        assert json.loads(body)["job_id"] == job_id
        deadline = time.monotonic() + 60
        while not (wait_for_job(base, location, 60).get("webhook") or {}).get("delivered"):
            assert time.monotonic() < deadline, "the delivery never reached the job's body"
            time.sleep(0.5)
        assert wait_for_job(base, location, 60)["webhook"]["attempts"] > 1
    finally:
        stop_up(up)
        server.shutdown()


async def publish_ingest(bootstrap: str, request: IngestRequest) -> None:
    """What a producer does without the API: the request straight onto the ingest topic."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.INGEST.name, to_bytes(request), key=keys.job_key(request.job_id)
        )
    finally:
        await producer.stop()


def test_a_job_published_straight_to_the_ingest_topic_runs_again_after_a_restart(
    tmp_path, long_video
):
    """The API never sees such a request, so the planner keeps it in the journal; the video
    stays under the producer's own blob key. A job whose video went while the service was
    down fails, saying so, rather than staying unfinished."""
    api_port, broker_port = free_port(), free_port()
    env = service_env(tmp_path, api_port, broker_port, ["scene", "tag", "face"])
    base, log = f"http://127.0.0.1:{api_port}", tmp_path / "up.log"
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir(parents=True)
    requests = []
    for name in ("clip", "gone"):
        (incoming / f"{name}.mp4").write_bytes(long_video.read_bytes())
        requests.append(
            IngestRequest(
                job_id=f"video_straight_{name}_000000",
                media_type="video",
                video_blob_key=f"incoming/{name}.mp4",
            )
        )
    clip, gone = (f"/v1/videos/{request.job_id}" for request in requests)
    up = start_up(env, log)
    try:
        wait_for_port("127.0.0.1", api_port, timeout=120)
        for request in requests:
            asyncio.run(publish_ingest(f"127.0.0.1:{broker_port}", request))
        for location in (clip, gone):
            wait_for_job(base, location, 120, until=("processing",))
    finally:
        stop_up(up)
    (incoming / "gone.mp4").unlink()
    up = start_up(env, log)
    try:
        body = wait_for_job(base, clip, 240)
        assert body["status"] == "finished", (body, log.read_text(errors="replace")[-3000:])
        starts = [round(s["start_seconds"]) for s in body["result"]["raw_scenes"]]
        assert starts == list(range(0, 120, 10))
        assert "(2 resumed)" in log.read_text(errors="replace")
        failed = wait_for_job(base, gone, 60)
        assert failed["status"] == "failed", failed
        assert failed["error"]["code"] == "unsupported_media"
        assert "incoming/gone.mp4" in failed["error"]["message"]
    finally:
        stop_up(up)


def test_an_enrolment_pending_at_a_restart_is_enrolled_after_it(tmp_path, media):
    """The face worker is paused, so the enrolment request waits on the topic, which the
    memory-only broker loses; the journal's pending record brings it back."""
    api_port = free_port()
    env = service_env(tmp_path, api_port, free_port(), ["face"])
    base, log = f"http://127.0.0.1:{api_port}", tmp_path / "up.log"
    tom = base64.b64encode((media / "images" / "faces" / "Tom_Hanks_54745.png").read_bytes())
    up = start_up(env, log)
    try:
        wait_for_port("127.0.0.1", api_port, timeout=120)
        face = subprocess.run(
            ["pgrep", "-g", str(up.pid), "-f", "launcher.cli worker face"],
            capture_output=True,
            text=True,
        ).stdout.split()
        assert face, "no face worker found"
        os.kill(int(face[0]), signal.SIGSTOP)
        with httpx.Client(base_url=base, timeout=30) as client:
            identity = client.post(
                "/v1/allowlist", json={"label": "Tom", "images": [{"data_base64": tom.decode()}]}
            ).headers["Location"]
            assert client.get(identity).json()["status"] == "pending"
    finally:
        stop_up(up)  # the paused worker is killed after the grace period
    up = start_up(env, log)
    try:
        wait_for_port("127.0.0.1", api_port, timeout=120)
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=base, timeout=30) as client:
            while (record := client.get(identity).json())["status"] == "pending":
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.5)
        assert record["status"] == "enrolled" and record["label"] == "Tom", record
    finally:
        stop_up(up)
