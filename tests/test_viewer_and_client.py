"""The results viewer in headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium), its keyframes, and the typed client, all against the real pipeline."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from ingest_api.client import ApiProblem, AsyncClient, Client, JobTimeout
from schemas.api import ImageBatchJob, VideoJob
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

ARTIFACTS = Path(os.environ.get("FRAMEWISE_TEST_ARTIFACTS", ROOT / ".artifacts"))
TEXTS = {"Copyright © 2013 Brandon Castellano", "www.bcastell.com"}


@pytest.fixture(scope="module")
def video_job(pipeline, test_video) -> VideoJob:
    with Client(pipeline.url) as client:
        job = client.wait(client.submit_video(test_video), timeout=180)
    assert isinstance(job, VideoJob) and job.status == "finished"
    return job


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--window-size=1400,1000",
    ):  # fmt: skip
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    yield chrome
    chrome.quit()


def wait_until(browser, condition, timeout: float = 20.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(lambda b: condition(b))


def screenshot(browser, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    browser.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def test_client_returns_typed_results_and_problems(pipeline, video_job, media):
    assert len(video_job.result.raw_scenes) == 8
    assert {o.full_text for o in video_job.result.ocr_results} == TEXTS
    with Client(pipeline.url) as client:
        with pytest.raises(ApiProblem) as refused:
            client.submit_video(b"", content_type="video/mp4")
        assert refused.value.status == 400 and refused.value.problem.title
        with pytest.raises(ApiProblem) as missing:
            client.get("video_" + "x" * 22)
        assert missing.value.problem.status == 404
        slow = client.submit_video(media / "video" / "testvideo.mp4")
        with pytest.raises(JobTimeout) as waited:
            client.wait(slow, timeout=0.3)
        assert waited.value.job.job_id == slow
        assert client.wait(slow, timeout=180).status == "finished"


def test_async_client_submits_images(pipeline, media):
    async def run() -> ImageBatchJob:
        async with AsyncClient(pipeline.url) as client:
            job_id = await client.submit_images(
                [media / "images" / "tags" / "kitten_224.png", ("bad", b"not an image")]
            )
            return await client.wait(job_id, timeout=120)

    job = asyncio.run(run())
    assert isinstance(job, ImageBatchJob)
    items = {item.external_id: item for item in job.items}
    assert items["kitten_224.png"].result.tags[0].tag == "cat"
    assert items["bad"].status == "failed" and items["bad"].error is not None


def test_keyframes_one_per_scene_and_section(pipeline, video_job):
    result = video_job.result
    kept = list((pipeline.data_dir / "thumbs" / video_job.job_id).glob("*.jpg"))
    assert 0 < len(kept) <= len(result.raw_scenes) + len(result.sections)
    with Client(pipeline.url) as client:
        for scene in result.raw_scenes:
            middle = (scene.start_seconds + scene.end_seconds) / 2
            response = client.http.get(f"/v1/videos/{video_job.job_id}/keyframe?t={middle}")
            assert response.headers["content-type"] == "image/jpeg", response.text
            image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
            assert max(image.shape[:2]) == 240
        assert client.http.get(f"/v1/videos/video_{'y' * 22}/keyframe").status_code == 404


def test_viewer_shows_a_video_job(pipeline, video_job, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{pipeline.url}/viewer/videos/{video_job.job_id}")
    scenes = wait_until(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, ".scene")) == 8)
    assert scenes
    points = browser.find_element(By.CSS_SELECTOR, "#activity polyline").get_attribute("points")
    assert len(points.split()) == len(video_job.result.frame_activity_diffs) == 719
    page = browser.find_element(By.TAG_NAME, "body").text
    assert all(text in page for text in TEXTS)
    assert browser.find_element(By.ID, "status").text.lower() == "finished"
    wait_until(  # every scene shows its keyframe
        browser,
        lambda b: all(
            "blob:" in s.get_attribute("style") for s in b.find_elements(By.CSS_SELECTOR, ".scene")
        ),
    )
    browser.find_elements(By.CSS_SELECTOR, ".scene")[3].click()
    assert "Scene 4" in browser.find_element(By.ID, "details").text
    assert screenshot(browser, "viewer-video.png").stat().st_size > 10_000


def test_viewer_shows_an_image_batch_with_a_failed_item(pipeline, media, browser):
    from selenium.webdriver.common.by import By

    group = base64.b64encode((media / "images" / "faces" / "t1.jpg").read_bytes()).decode()
    with Client(pipeline.url) as client:
        job_id = client.submit_images(
            [
                media / "images" / "tags" / "kitten_224.png",
                ("group", base64.b64decode(group)),
                media / "images" / "ocr" / "en_rec.jpg",
                ("broken.jpg", b"\xff\xd8\xff\xe0 truncated"),
            ]
        )
        client.wait(job_id, timeout=120)
    browser.get(f"{pipeline.url}/viewer/images/{job_id}")
    cards = wait_until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".card"))
    assert len(cards) == 4
    failed = browser.find_element(By.CSS_SELECTOR, ".card.failed")
    assert "broken.jpg" in failed.text and "media" in failed.text
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "cat" in page and "person_6" in page and "MovieShots" in page
    wait_until(
        browser,
        lambda b: (
            sum(bool(i.get_attribute("src")) for i in b.find_elements(By.CSS_SELECTOR, "img.thumb"))
            == 3
        ),
    )
    assert screenshot(browser, "viewer-images.png").stat().st_size > 10_000


def test_analyze_command_prints_a_summary_or_the_body(pipeline, media):
    import json
    import subprocess
    import sys

    image = media / "images" / "tags" / "kitten_224.png"
    command = [sys.executable, "-m", "launcher.cli", "analyze", "--url", pipeline.url, str(image)]
    table = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert table.returncode == 0, table.stderr
    assert "kitten_224.png" in table.stdout and "cat" in table.stdout
    assert "/viewer/images/image_batch_" in table.stderr
    raw = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    body = ImageBatchJob.model_validate(json.loads(raw.stdout))
    assert body.status == "finished" and body.items[0].result.tags[0].tag == "cat"
