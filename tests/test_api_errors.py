"""Bad input through the real API gets a clear RFC 9457 problem and never a 5xx."""

from __future__ import annotations

import base64

import pytest

pytestmark = pytest.mark.integration

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 32).decode()


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def test_video_upload_errors(pipeline, media):
    with pipeline.client() as client:
        post = client.post
        problem(post("/v1/videos", content=b"abc", headers={"Content-Type": "text/plain"}), 415)
        problem(post("/v1/videos", content=b"", headers={"Content-Type": "video/mp4"}), 400)
        body = problem(
            post(
                "/v1/videos",
                content=b"definitely not a video" * 100,
                headers={"Content-Type": "video/mp4"},
            ),
            415,
        )
        assert "video" in body["detail"]
        truncated = (media / "video" / "testvideo.mp4").read_bytes()[:200_000]
        problem(post("/v1/videos", content=truncated, headers={"Content-Type": "video/mp4"}), 415)
        # 8 MiB limit in the test pipeline: refused by Content-Length and by counting a stream.
        problem(
            post(
                "/v1/videos",
                content=b"0" * (9 * 1024 * 1024),
                headers={"Content-Type": "video/mp4"},
            ),
            413,
        )
        chunks = (b"0" * (1024 * 1024) for _ in range(9))
        problem(post("/v1/videos", content=chunks, headers={"Content-Type": "video/mp4"}), 413)
        for bad in ("-1", "1.5", "soon"):
            problem(
                post(
                    "/v1/videos",
                    content=b"x",
                    headers={"Content-Type": "video/mp4", "Max-Processing-Time": bad},
                ),
                400,
            )
        problem(
            post(
                "/v1/videos",
                content=b"x",
                params={"webhook.secret": "s"},
                headers={"Content-Type": "video/mp4"},
            ),
            400,
        )
        problem(
            post(
                "/v1/videos",
                content=b"x",
                params={"webhook.url": "ftp://x"},
                headers={"Content-Type": "video/mp4"},
            ),
            400,
        )


def test_image_batch_errors_name_the_item(pipeline):
    with pipeline.client() as client:
        post = client.post
        problem(post("/v1/images", json={"images": []}), 422)
        problem(post("/v1/images", json={}), 422)
        problem(post("/v1/images", json={"images": [{"data_base64": PNG}]}), 422)
        body = problem(
            post(
                "/v1/images",
                json={
                    "images": [
                        {"external_id": "a", "data_base64": PNG},
                        {"external_id": "b", "data_base64": "data:image/png;base64," + PNG},
                    ]
                },
            ),
            400,
        )
        assert "images[1]" in body["detail"] and "data:" in body["detail"]
        body = problem(
            post(
                "/v1/images",
                json={"images": [{"external_id": "a", "data_base64": "!!!not base64!!!"}]},
            ),
            400,
        )
        assert "images[0]" in body["detail"]
        body = problem(
            post(
                "/v1/images",
                json={
                    "images": [
                        {"external_id": "a", "data_base64": PNG},
                        {"external_id": "a", "data_base64": PNG},
                    ]
                },
            ),
            400,
        )
        assert "external_id" in body["detail"]
        problem(
            post(
                "/v1/images", content=b"{broken json", headers={"Content-Type": "application/json"}
            ),
            422,
        )
        big = "A" * (5 * 1024 * 1024)
        problem(
            post("/v1/images", json={"images": [{"external_id": "a", "data_base64": big}]}), 413
        )


def test_unknown_jobs_and_bad_latency_query(pipeline):
    with pipeline.client() as client:
        problem(client.get("/v1/videos/video_doesnotexist000000000"), 404)
        problem(client.get("/v1/images/image_batch_doesnotexist0000"), 404)
        problem(client.get("/v1/latency", params={"media_type": "audio"}), 400)
        image = client.get("/v1/latency", params={"media_type": "image"}).json()
        assert image["unit"] == "image" and set(image) >= {"latency_ms_per_unit", "samples"}
