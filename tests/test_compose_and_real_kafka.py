"""The deployment path: compose/ matches the worker roles, and on a machine with Docker the
pipeline runs on real Apache Kafka (testcontainers); without Docker that test skips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from framewise.broker import free_port, wait_for_port
from stages.registry import stages
from tests.conftest import upload_video, wait_for_job

ROOT = Path(__file__).resolve().parents[1]


def test_compose_runs_kafka_and_every_role():
    compose = yaml.safe_load((ROOT / "compose" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    commands = {name: s.get("command") for name, s in services.items()}
    assert commands["api"] == ["api"] and commands["topics"] == ["topics"]
    for role in ("decode", "aggregator", "webhook", *stages()):
        assert commands[role] == ["worker", role], f"no compose service for {role}"
    env = (ROOT / "compose" / "framewise.env").read_text()
    assert "FRAMEWISE_KAFKA_BOOTSTRAP=kafka:9092" in env


def docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


@pytest.mark.integration
@pytest.mark.skipif(
    not docker_available(),
    reason="Docker is not running on this machine, so testcontainers cannot start Apache Kafka",
)
def test_pipeline_on_real_apache_kafka(tmp_path, test_video):
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer("apache/kafka:3.9.0").with_kraft() as kafka:
        port = free_port()
        env = {
            "FRAMEWISE_KAFKA_BOOTSTRAP": kafka.get_bootstrap_server(),
            "FRAMEWISE_PARTITIONS": "2",
            "FRAMEWISE_DATA_DIR": str(tmp_path),
            "FRAMEWISE_API_PORT": str(port),
            "FRAMEWISE_STAGES": json.dumps(["scene"]),
        }
        full_env = {**os.environ, **env}
        subprocess.run(
            [sys.executable, "-m", "launcher.cli", "topics"], env=full_env, check=True, cwd=ROOT
        )
        procs = [
            subprocess.Popen([sys.executable, "-m", "launcher.cli", *args], env=full_env, cwd=ROOT)
            for args in (
                ["worker", "decode"],
                ["worker", "scene"],
                ["worker", "aggregator"],
                ["api"],
            )
        ]
        try:
            wait_for_port("127.0.0.1", port, timeout=90)
            url = f"http://127.0.0.1:{port}"
            body = wait_for_job(url, upload_video(url, test_video), 180)
            assert body["status"] == "finished" and len(body["result"]["raw_scenes"]) == 8
        finally:
            for proc in procs:
                proc.terminate()
