"""A broker that is briefly unreachable delays work but loses none: every connection of the
API and the workers goes through a proxy that is cut for several seconds mid-job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from framewise.broker import broker_binary, free_port, wait_for_port
from tests.conftest import upload_video, wait_for_job
from tests.tcp_proxy import Proxy

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def test_broker_outage_delays_but_loses_nothing(tmp_path, long_video):
    broker_port, proxy_port, api_port = free_port(), free_port(), free_port()
    proxy = Proxy(proxy_port, broker_port)
    proxy.start()
    url = f"tcp://127.0.0.1:{broker_port}"
    broker = subprocess.Popen(
        [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{proxy_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    wait_for_port("127.0.0.1", broker_port)
    env = {
        **os.environ,
        "FRAMEWISE_KAFKA_BOOTSTRAP": f"127.0.0.1:{proxy_port}",
        "FRAMEWISE_FAST_GROUP_TIMEOUTS": "true",
        "FRAMEWISE_CHANGELOG_COMPACTION": "false",
        "FRAMEWISE_PARTITIONS": "2",
        "FRAMEWISE_DATA_DIR": str(tmp_path / "data"),
        "FRAMEWISE_API_PORT": str(api_port),
        "FRAMEWISE_STAGES": json.dumps(["scene"]),
        "FRAMEWISE_STALL_TIMEOUT_S": "15",
    }
    subprocess.run([sys.executable, "-m", "launcher.cli", "topics"], env=env, check=True, cwd=ROOT)
    logs = []
    procs = []
    for args in (["worker", "decode"], ["worker", "scene"], ["worker", "aggregator"], ["api"]):
        log = (tmp_path / f"{args[-1]}.log").open("wb")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "launcher.cli", *args],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        wait_for_port("127.0.0.1", api_port, timeout=90)
        base = f"http://127.0.0.1:{api_port}"
        location = upload_video(base, long_video)
        wait_for_job(base, location, 60, until=("processing", "finished"))
        proxy.cut()
        at_cut = httpx.get(f"{base}{location}").json()["status"]
        assert at_cut == "processing", "the outage must fall in the middle of the job"
        time.sleep(5.0)  # every client loses its connections; nothing reaches the broker
        # The API knows: its health says so, and new work gets a prompt 503 problem.
        health = httpx.get(f"{base}/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["broker"] == "unreachable"
        started = time.monotonic()
        refused = httpx.post(
            f"{base}/v1/videos",
            content=long_video.read_bytes(),
            headers={"Content-Type": "video/mp4"},
            timeout=30,
        )
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert time.monotonic() - started < 10
        proxy.restore()
        body = wait_for_job(base, location, 180)
        assert body["status"] == "finished", (body, tmp_path)
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/healthz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the API did not see the broker come back"
            time.sleep(0.5)
        starts = [round(s["start_seconds"]) for s in body["result"]["raw_scenes"]]
        assert starts == list(range(0, 120, 10))
        assert all(p.poll() is None for p in procs), "a process died during the outage"
        for log in logs:
            log.flush()
        worker_logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
        assert "Connect call failed" in worker_logs or "Unable connect" in worker_logs, (
            "no client noticed the outage"
        )
        # ...and said so a few times, not hundreds: warnings and errors are rate-limited.
        problems = [
            line for line in worker_logs.splitlines() if "[ERROR]" in line or "[WARNING]" in line
        ]
        assert len(problems) < 150, f"{len(problems)} warnings and errors for a 5 s outage"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
        broker.terminate()
        proxy.cut()
