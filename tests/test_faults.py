"""Processes killed while jobs run: every job still ends, with the result of an undisturbed
run, and status survives an API restart."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.conftest import read_topic
from tests.test_pipeline import submit_video

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reference(pipeline, long_video) -> dict:
    return pipeline.wait_job(submit_video(pipeline, long_video), timeout=120)


@pytest.mark.parametrize("role", ["aggregator", "decode", "ocr", "scene"])
def test_killed_worker_gives_the_undisturbed_result(pipeline, long_video, reference, role):
    if role not in pipeline.processes:
        pytest.skip(f"{role} is not running in this pipeline")
    location = submit_video(pipeline, long_video)
    job_id = location.rsplit("/", 1)[1]
    pipeline.wait_job(location, until=("processing", "finished"), timeout=30)
    pipeline.kill(role)
    with pipeline.client() as client:
        assert client.get(location).json()["status"] == "processing", "must die mid-job"
    time.sleep(1.0)
    pipeline.start(role)
    body = pipeline.wait_job(location, timeout=180)
    assert body["status"] == "finished", body
    assert body["result"] == reference["result"]
    results = asyncio.run(read_topic(pipeline.bootstrap, "framewise.results.v1", job_id.encode()))
    assert results, "the result was never published"
    assert all(json.loads(r.value)["result"] == reference["result"] for r in results)
    time.sleep(2.0)  # decoding that was still running when the job ended stops by itself
    assert not (pipeline.data_dir / "frames" / job_id).exists(), "frames outlived the job"


def test_status_survives_an_api_restart(pipeline, long_video):
    location = submit_video(pipeline, long_video)
    pipeline.kill("api")
    pipeline.start("api")
    from framewise.broker import wait_for_port

    wait_for_port("127.0.0.1", int(pipeline.url.rsplit(":", 1)[1]), timeout=60)
    body = pipeline.wait_job(location, timeout=120)  # the new API process reads the topic
    assert body["status"] == "finished"


def test_sigterm_hands_work_back(pipeline, long_video, reference):
    """A graceful stop mid-job: the worker commits what it finished and its partitions go back
    to the group; the replacement picks up the rest and the result is unchanged."""
    location = submit_video(pipeline, long_video)
    pipeline.wait_job(location, until=("processing", "finished"), timeout=30)
    process = pipeline.processes.pop("scene")
    process.terminate()
    process.wait(timeout=30)  # a graceful stop ends within the timeout
    with pipeline.client() as client:
        assert client.get(location).json()["status"] == "processing", "must stop mid-job"
    pipeline.start("scene")
    body = pipeline.wait_job(location, timeout=180)
    assert body["status"] == "finished" and body["result"] == reference["result"]
