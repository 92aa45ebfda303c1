"""The whole pipeline on a real broker, real workers and the real API (see conftest.Pipeline)."""

from __future__ import annotations

import asyncio
import base64
import http.server
import itertools
import json
import shutil
import threading
import time
from datetime import UTC, datetime
from typing import ClassVar

import pytest

from framewise.broker import free_port
from schemas.api import ImageBatchJob, VideoJob
from schemas.messages import DeadLetter, IngestRequest
from stages.webhook.delivery import verify_signature
from tests.conftest import read_topic, record_codecs

pytestmark = pytest.mark.integration

TESTVIDEO_SCENES = 8  # see test_scene_detector: 2 hard cuts + 5 transitions


def submit_video(pipeline, path, headers=None, params=None) -> str:
    with pipeline.client() as client, path.open("rb") as f:
        response = client.post(
            "/v1/videos",
            content=f.read(),
            params=params,
            headers={"Content-Type": "video/mp4", **(headers or {})},
        )
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/v1/videos/{response.json()['job_id']}"
    return response.headers["Location"]


def check_testvideo_result(body: dict, stages: list[str]) -> None:
    job = VideoJob.model_validate(body)
    assert job.status == "finished" and job.result is not None
    scenes = job.result.raw_scenes
    assert len(scenes) == TESTVIDEO_SCENES
    assert scenes[0].start_seconds == 0.0
    assert all(a.end_seconds == b.start_seconds for a, b in itertools.pairwise(scenes))
    assert scenes[-1].end_seconds == pytest.approx(24.024, abs=0.05)
    assert len(job.result.frame_activity_diffs) == 719
    assert all(0 <= d <= 1 for d in job.result.frame_activity_diffs)
    assert job.result.metadata.width == 1280 and job.result.metadata.height == 720
    texts = {r.full_text for r in job.result.ocr_results}
    assert texts == {"Copyright © 2013 Brandon Castellano", "www.bcastell.com"}
    constellation = body["result"]["person_constellation_scenes"]
    if "face" in stages:  # one entry per raw scene; nobody appears in this video
        assert [c["time_segment"] for c in constellation] == body["result"]["raw_scenes"]
        assert all(c["person_ids"] == [] for c in constellation)
    else:  # a stage that is not enabled leaves its field an empty list
        assert constellation == []
    if "tag" in stages:
        sections = job.result.sections
        covered = sorted(
            (t.start_seconds, t.end_seconds) for s in sections for t in s.time_segments
        )
        assert covered[0][0] == 0.0 and covered[-1][1] == scenes[-1].end_seconds
    else:
        assert body["result"]["sections"] == []


def test_video_over_rest(pipeline, test_video):
    location = submit_video(pipeline, test_video)
    body = pipeline.wait_job(location)
    check_testvideo_result(body, pipeline.stages)
    with pipeline.client() as client:
        latency = client.get("/v1/latency", params={"media_type": "video"}).json()
    assert latency["unit"] == "second" and latency["samples"] >= 1
    assert latency["latency_ms_per_unit"] > 0


def test_video_published_to_the_ingest_topic(pipeline, test_video):
    """An outside producer: the file goes into the blob store (claim check), the request onto
    the ingest topic; the result comes back on the results topic with the GET body."""
    from aiokafka import AIOKafkaProducer

    job_id = "video_fromkafka0000000001"
    blob = pipeline.data_dir / "incoming" / "testvideo.mp4"
    blob.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(test_video, blob)
    request = IngestRequest(
        job_id=job_id,
        media_type="video",
        video_blob_key="incoming/testvideo.mp4",
        submitted_at=datetime.now(UTC),
    )

    async def produce():
        producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap)
        await producer.start()
        await producer.send_and_wait(
            "framewise.ingest.v1", request.model_dump_json().encode(), key=job_id.encode()
        )
        await producer.stop()

    asyncio.run(produce())
    body = pipeline.wait_job(f"/v1/videos/{job_id}")
    check_testvideo_result(body, pipeline.stages)
    results = asyncio.run(read_topic(pipeline.bootstrap, "framewise.results.v1", job_id.encode()))
    assert len(results) == 1
    assert json.loads(results[0].value)["result"] == body["result"]
    # bodies travel gzipped (a long video's body repeats each person in every scene)
    assert asyncio.run(record_codecs(pipeline.bootstrap, "framewise.results.v1")) == {1}


def test_a_megabyte_body_is_streamed_whole(pipeline):
    """A long video's final body is served from the API's file of it, byte for byte."""
    from aiokafka import AIOKafkaProducer

    job_id = "video_" + "b" * 32
    body = json.dumps(
        {
            "job_id": job_id,
            "status": "finished",
            "created_at": "2026-11-26T10:00:00+00:00",
            "updated_at": "2026-11-26T10:10:00+00:00",
            "result": {"frame_activity_diffs": [0.123456] * 300_000},  # 2.7 MB
        }
    ).encode()

    async def publish():
        producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap, max_request_size=16 << 20)
        await producer.start()
        await producer.send_and_wait("framewise.job-status.v1", body, key=job_id.encode())
        await producer.stop()

    asyncio.run(publish())
    with pipeline.client() as client:
        response = client.get(f"/v1/videos/{job_id}")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(body))
    assert response.headers["content-type"] == "application/json"
    assert response.content == body


def test_image_batch_with_an_undecodable_item(pipeline, media):
    good = base64.b64encode((media / "images" / "tags" / "kitten_224.png").read_bytes()).decode()
    bad = base64.b64encode(b"this is not an image at all").decode()
    text = base64.b64encode((media / "images" / "ocr" / "latin.jpg").read_bytes()).decode()
    with pipeline.client() as client:
        response = client.post(
            "/v1/images",
            json={
                "images": [
                    {"external_id": "cat", "data_base64": good},
                    {"external_id": "junk", "data_base64": bad},
                    {"external_id": "latin", "data_base64": text},
                ]
            },
        )
    assert response.status_code == 202, response.text
    body = pipeline.wait_job(response.headers["Location"])
    job = ImageBatchJob.model_validate(body)
    assert job.status == "finished"
    items = {item.external_id: item for item in job.items}
    assert items["cat"].status == "finished" and items["cat"].result is not None
    assert items["junk"].status == "failed"
    assert items["latin"].result.ocr_results[0].model_dump() == {
        "language_code": "la",
        "full_text": "Alphabetum in mundo hodie frequentissime adhibitum est alphabetum Latinum.",
    }
    assert items["cat"].result.ocr_results == []
    if "tag" in pipeline.stages:
        assert items["cat"].result.tags[0].tag == "cat"
        assert items["cat"].result.tags[0].probability > 0.9
    assert items["junk"].error.code == "unsupported_media"


class Receiver(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict, bytes]]] = []
    fail_first = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers), body))
        if Receiver.fail_first > 0:
            Receiver.fail_first -= 1
            self.send_response(503)
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_signed_webhook_is_delivered_and_verifies(pipeline, test_video):
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.received.clear()
    Receiver.fail_first = 1  # the first attempt gets a 503: the retry must carry the same id
    secret = "s3cr3t-for-tests"
    try:
        location = submit_video(
            pipeline,
            test_video,
            params={"webhook.url": f"http://127.0.0.1:{port}/hook", "webhook.secret": secret},
        )
        pipeline.wait_job(location)
        deadline = time.monotonic() + 30
        while len(Receiver.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.shutdown()
    assert len(Receiver.received) == 2
    (first_headers, _), (headers, body) = Receiver.received
    assert first_headers["X-Webhook-Id"] == headers["X-Webhook-Id"]
    assert verify_signature(secret, headers["X-Webhook-Signature"], body)
    assert not verify_signature("wrong", headers["X-Webhook-Signature"], body)
    # Standard Webhooks verification, done by hand as a receiver would.
    import hashlib
    import hmac

    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest())
    assert headers["webhook-signature"] == "v1," + expected.decode()
    payload = json.loads(body)
    assert payload["status"] == "finished" and len(payload["result"]["raw_scenes"]) == 8
    status = pipeline.wait_job(location, until=("finished",))
    deadline = time.monotonic() + 10
    with pipeline.client() as client:
        while not (status.get("webhook") or {}).get("delivered") and time.monotonic() < deadline:
            time.sleep(0.2)
            status = client.get(location).json()
    assert status["webhook"] == {"delivered": True, "attempts": 2}


def test_max_processing_time_cancels_the_job(pipeline, long_video):
    location = submit_video(pipeline, long_video, headers={"Max-Processing-Time": "1"})
    body = pipeline.wait_job(location, timeout=30)
    assert body["status"] == "failed"
    assert body["error"]["code"] == "processing_timeout"
    assert "result" not in body


def test_malformed_ingest_message_is_dead_lettered_and_consumer_goes_on(pipeline, media):
    from aiokafka import AIOKafkaProducer

    async def produce():
        producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap)
        await producer.start()
        await producer.send_and_wait("framewise.ingest.v1", b"{not json", key=b"garbage")
        await producer.send_and_wait(
            "framewise.ingest.v1",
            json.dumps({"job_id": "video_x", "media_type": "video"}).encode(),
            key=b"invalid",
        )
        await producer.stop()

    asyncio.run(produce())
    letters = asyncio.run(read_topic(pipeline.bootstrap, "framewise.ingest.v1.dlq", None, 8))
    reasons = {m.key: DeadLetter.model_validate_json(m.value).reason for m in letters}
    assert "invalid IngestRequest" in reasons[b"garbage"]
    assert "job_id" in reasons[b"invalid"]
    # The consumer still works: an image job submitted afterwards finishes.
    data = base64.b64encode((media / "images" / "tags" / "fish.png").read_bytes()).decode()
    with pipeline.client() as client:
        response = client.post(
            "/v1/images", json={"images": [{"external_id": "f", "data_base64": data}]}
        )
    assert pipeline.wait_job(response.headers["Location"])["status"] == "finished"


def test_scene_worker_killed_mid_job_finishes_once(pipeline, long_video):
    location = submit_video(pipeline, long_video)
    job_id = location.rsplit("/", 1)[1]
    pipeline.wait_job(location, until=("processing", "finished"), timeout=30)
    pipeline.kill("scene")
    with pipeline.client() as client:
        at_kill = client.get(location).json()
    assert at_kill["status"] == "processing", "the worker must die mid-job for this test to count"
    time.sleep(1.0)
    pipeline.start("scene")
    body = pipeline.wait_job(location, timeout=120)
    assert body["status"] == "finished", body
    starts = [round(s["start_seconds"]) for s in body["result"]["raw_scenes"]]
    assert starts == list(range(0, 120, 10))
    results = asyncio.run(read_topic(pipeline.bootstrap, "framewise.results.v1", job_id.encode()))
    assert len(results) == 1, "finalised exactly once"


def test_video_sections_end_to_end(pipeline, animals_video):
    if "tag" not in pipeline.stages:
        pytest.skip("the tag model is not installed")
    body = pipeline.wait_job(submit_video(pipeline, animals_video))
    job = VideoJob.model_validate(body)
    assert [round(s.start_seconds) for s in job.result.raw_scenes] == [0, 3, 6, 9]
    sections = {s.section_tag: s for s in job.result.sections}
    assert [
        (round(t.start_seconds), round(t.end_seconds)) for t in sections["cat"].time_segments
    ] == [(0, 3), (9, 12)]
    assert [
        (round(t.start_seconds), round(t.end_seconds)) for t in sections["fish"].time_segments
    ] == [(3, 6)]


def test_faces_in_a_video_and_an_image_batch_end_to_end(pipeline, faces_video, media):
    if "face" not in pipeline.stages:
        pytest.skip("the face detector is not installed")
    body = pipeline.wait_job(submit_video(pipeline, faces_video))
    scenes = VideoJob.model_validate(body).result.person_constellation_scenes
    first, middle, last = ({p.person_id for p in s.person_ids} for s in scenes)
    assert len(first) == 6 and middle == set() and last == first
    group = base64.b64encode((media / "images" / "faces" / "t1.jpg").read_bytes()).decode()
    with pipeline.client() as client:
        response = client.post(
            "/v1/images", json={"images": [{"external_id": "group", "data_base64": group}]}
        )
    images = ImageBatchJob.model_validate(pipeline.wait_job(response.headers["Location"]))
    persons = images.items[0].result.person_ids
    assert len(persons) == 6 and all(len(p.face_embedding) == 128 for p in persons)


def test_allowlisted_face_is_marked_in_a_video_end_to_end(pipeline, media, tom_video):
    """The default pack, enrolled through the API: Tom Hanks is allowlisted in both scenes of
    tom_video and none of the six people beside him is."""
    tom = base64.b64encode((media / "images" / "faces" / "Tom_Hanks_54745.png").read_bytes())
    with pipeline.client() as client:
        response = client.post(
            "/v1/allowlist", json={"label": "Tom", "images": [{"data_base64": tom.decode()}]}
        )
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
        deadline = time.monotonic() + 60
        while client.get(location).json()["status"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.2)
        identity = client.get(location).json()
        assert identity["status"] == "enrolled" and identity["face_pack"] == "dlib"
        try:
            body = pipeline.wait_job(submit_video(pipeline, tom_video), timeout=120)
        finally:
            client.delete(location)
    scenes = VideoJob.model_validate(body).result.person_constellation_scenes
    first, second = scenes
    assert len(first.person_ids) == 7 and len(second.person_ids) == 1
    assert [p.allowlisted for p in second.person_ids] == [True]
    marked = [p.person_id for p in first.person_ids if p.allowlisted]
    assert marked == [second.person_ids[0].person_id]


def face_crop_b64(media) -> str:
    import cv2

    group = cv2.imread(str(media / "images" / "faces" / "t1.jpg"))
    crop = group[100:500, 300:700]  # around one face of the group photo
    return base64.b64encode(cv2.imencode(".jpg", crop)[1].tobytes()).decode()


def test_allowlist_enroll_list_remove(pipeline, media):
    if "face" not in pipeline.stages:
        pytest.skip("the face detector is not installed")
    mask = base64.b64encode((media / "images" / "faces" / "mask_blue.jpg").read_bytes()).decode()
    with pipeline.client() as client:
        assert (
            client.post(
                "/v1/allowlist",
                json={"label": "x", "images": [{"data_base64": "data:image/jpeg;base64," + mask}]},
            ).status_code
            == 400
        )
        response = client.post(
            "/v1/allowlist",
            json={"label": "Ada", "images": [{"data_base64": face_crop_b64(media)}]},
        )
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
        failed = client.post(
            "/v1/allowlist", json={"label": "nobody", "images": [{"data_base64": mask}]}
        ).headers["Location"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            identity, other = client.get(location).json(), client.get(failed).json()
            if identity["status"] != "pending" and other["status"] != "pending":
                break
            time.sleep(0.2)
        assert identity["status"] == "enrolled" and identity["faces"] == 1
        assert identity["label"] == "Ada"
        assert other["status"] == "failed" and "no face" in other["error"]
        listed = client.get("/v1/allowlist").json()["identities"]
        assert identity["identity_id"] in {i["identity_id"] for i in listed}
        assert client.delete(location).status_code == 204
        assert client.get(location).status_code == 404
        assert client.delete(location).status_code == 404


def test_prometheus_metrics(pipeline):
    with pipeline.client() as client:
        text = client.get("/metrics").text
    for name in (
        "framewise_jobs_accepted_total",
        "framewise_jobs_active",
        "framewise_job_seconds_bucket",
        "framewise_webhook_failures_total",
    ):
        assert name in text
    assert 'framewise_jobs_accepted_total{media_type="video"}' in text
