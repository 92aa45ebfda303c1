"""API keys (hashed at rest, each job visible only to its key) and backpressure (429 with
Retry-After past the configured queue depth), on a second API replica of the test pipeline."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from framewise.broker import free_port, wait_for_port
from ingest_api.auth import hash_key

pytestmark = pytest.mark.integration

KEY_A, KEY_B = "key-a-0123456789", "key-b-9876543210"


@pytest.fixture(scope="module")
def guarded_api(pipeline):
    port = free_port()
    pipeline.start(
        "api",
        name="guarded-api",
        FRAMEWISE_API_PORT=str(port),
        FRAMEWISE_MAX_ACTIVE_JOBS="2",
        FRAMEWISE_API_KEY_HASHES=json.dumps([hash_key(KEY_A), hash_key(KEY_B)]),
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        pipeline.kill("guarded-api")


def client(url: str, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=30)


def test_keys_are_required_and_jobs_are_private(guarded_api, media, pipeline):
    image = base64.b64encode((media / "images" / "tags" / "fish.png").read_bytes()).decode()
    body = {"images": [{"external_id": "f", "data_base64": image}]}
    with client(guarded_api) as anonymous, client(guarded_api, "wrong") as wrong:
        assert anonymous.post("/v1/images", json=body).status_code == 401
        response = wrong.get("/v1/latency", params={"media_type": "image"})
        assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    with client(guarded_api, KEY_A) as a, client(guarded_api, KEY_B) as b:
        response = a.post("/v1/images", json=body)
        assert response.status_code == 202
        location = response.headers["Location"]
        assert a.get(location).status_code == 200
        assert b.get(location).status_code == 404  # indistinguishable from a missing job
        b_headers = {"X-API-Key": KEY_B}
        assert b.get(location, headers=b_headers).status_code == 404


def active_jobs(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return float(
        next(
            line.split()[-1]
            for line in text.splitlines()
            if line.startswith("framewise_jobs_active ")
        )
    )


def test_backpressure_answers_429_with_retry_after(guarded_api, long_video, pipeline):
    deadline = time.monotonic() + 60
    while active_jobs(guarded_api) > 0 and time.monotonic() < deadline:
        time.sleep(0.2)  # earlier tests' jobs drain first
    data = long_video.read_bytes()
    headers = {"Content-Type": "video/mp4"}
    locations = []
    with client(guarded_api, KEY_A) as a:
        for _ in range(2):
            response = a.post("/v1/videos", content=data, headers=headers)
            assert response.status_code == 202
            locations.append(response.headers["Location"])
        refused = a.post("/v1/videos", content=data, headers=headers)
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) > 0
        assert a.get("/v1/latency", params={"media_type": "video"}).status_code == 200
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(a.get(loc).json()["status"] in ("finished", "failed") for loc in locations):
                break
            time.sleep(0.5)
        accepted = a.post(
            "/v1/images",
            json={
                "images": [
                    {"external_id": "x", "data_base64": base64.b64encode(b"not an image").decode()}
                ]
            },
        )
        assert accepted.status_code == 202  # room again once the queue drained


def test_allowlists_belong_to_the_key_that_enrolled_them(guarded_api, media):
    """Key B neither sees, reads nor removes key A's identities, and B's jobs never match
    them; A's jobs do."""
    tom = (media / "images" / "faces" / "Tom_Hanks_54745.png").read_bytes()
    enrol = {"label": "Tom", "images": [{"data_base64": base64.b64encode(tom).decode()}]}
    image = {"images": [{"external_id": "tom", "data_base64": base64.b64encode(tom).decode()}]}
    with client(guarded_api, KEY_A) as a, client(guarded_api, KEY_B) as b:
        location = a.post("/v1/allowlist", json=enrol).headers["Location"]
        deadline = time.monotonic() + 180  # the face worker may still be busy with older jobs
        while a.get(location).json()["status"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert a.get(location).json()["status"] == "enrolled", a.get(location).json()
        identity = location.rsplit("/", 1)[-1]
        assert identity in {i["identity_id"] for i in a.get("/v1/allowlist").json()["identities"]}
        assert identity not in {
            i["identity_id"] for i in b.get("/v1/allowlist").json()["identities"]
        }
        assert b.get(location).status_code == 404 and b.delete(location).status_code == 404

        def allowlisted(http: httpx.Client) -> bool:
            job = http.post("/v1/images", json=image).headers["Location"]
            for _ in range(300):
                body = http.get(job).json()
                if body["status"] in ("finished", "failed"):
                    break
                time.sleep(0.2)
            persons = body["items"][0]["result"]["person_ids"]
            assert len(persons) == 1
            return persons[0]["allowlisted"]

        try:
            assert allowlisted(a) is True
            assert allowlisted(b) is False
        finally:
            assert a.delete(location).status_code == 204
