"""Schemas are defined once: the OpenAPI document and docs/schemas come from schemas/."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

from framewise.config import Settings
from ingest_api.app import create_app
from schemas.api import JobHead
from schemas.export import json_schemas

ROOT = Path(__file__).resolve().parents[1]


def openapi() -> dict:
    # The OpenAPI document needs no broker: build the app without running its lifespan.
    return create_app(Settings(data_dir=Path("/tmp/framewise-openapi"))).openapi()


def props(doc: dict, name: str) -> dict:
    return doc["components"]["schemas"][name]["properties"]


def test_openapi_matches_the_contract_field_for_field():
    doc = openapi()
    assert set(doc["paths"]) >= {
        "/v1/videos",
        "/v1/videos/{job_id}",
        "/v1/images",
        "/v1/images/{job_id}",
        "/v1/latency",
    }
    video = doc["paths"]["/v1/videos"]["post"]
    params = {p["name"]: p for p in video["parameters"]}
    assert params["Max-Processing-Time"]["in"] == "header"
    assert {"webhook.url", "webhook.secret"} <= set(params)
    assert "application/octet-stream" in video["requestBody"]["content"]
    result = props(doc, "VideoResult")
    assert set(result) == {
        "raw_scenes",
        "frame_activity_diffs",
        "person_constellation_scenes",
        "ocr_results",
        "sections",
        "metadata",
    }
    assert set(props(doc, "Person")) == {
        "age",
        "gender",
        "face_embedding",
        "face_thumbnail",
        "allowlisted",
        "relative_prominence",
        "person_id",
    }
    assert props(doc, "Person")["gender"]["enum"] == ["male", "female", "unidentified"]
    assert set(props(doc, "Section")) == {
        "section_tag",
        "time_segments",
        "thumbnail_timestamp",
        "confidence",
        "is_critical",
        "relative_activity",
    }
    assert set(props(doc, "ImageResult")) == {"tags", "person_ids", "ocr_results"}
    assert set(props(doc, "ImageOcrResult")) == {"language_code", "full_text"}
    assert set(props(doc, "Tag")) == {"tag", "probability", "is_critical"}
    assert set(props(doc, "ImageItem")) == {"external_id", "status", "result", "error"}
    assert doc["components"]["schemas"]["ImageBatchRequest"]["required"] == ["images"]
    assert set(props(doc, "LatencyReport")) == {
        "media_type",
        "unit",
        "latency_ms_per_unit",
        "samples",
    }


def test_published_json_schemas_are_current():
    for name, schema in json_schemas().items():
        path = ROOT / "docs" / "schemas" / f"{name}.schema.json"
        assert path.is_file(), f"{path} missing: run `make schemas`"
        assert json.loads(path.read_text()) == schema, f"{path} is stale: run `make schemas`"


def test_a_job_head_reads_status_times_and_units_without_building_the_result():
    person = {"person_id": "person_1", "face_embedding": [0.123456] * 128, "face_thumbnail": "x"}
    scenes = [{"person_ids": [person] * 6} for _ in range(200)]
    body = json.dumps(
        {
            "job_id": "video_x",
            "status": "finished",
            "created_at": "2026-11-26T10:00:00+00:00",
            "updated_at": "2026-11-26T10:00:30+00:00",
            "webhook": {"delivered": False, "attempts": 2},
            "result": {
                "person_constellation_scenes": scenes,
                "metadata": {"duration_seconds": 576.0},
            },
        }
    ).encode()
    tracemalloc.start()
    head = JobHead.of(body)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (head.status, head.duration_seconds, head.items) == ("finished", 576.0, None)
    assert head.updated_at == "2026-11-26T10:00:30+00:00" and head.webhook["attempts"] == 2
    assert peak < len(body) / 20  # json.loads would build megabytes of objects
    batch = JobHead.of(b'{"status": "failed", "items": [{"result": {"tags": []}}, {}]}')
    assert batch.status == "failed" and len(batch.items) == 2
    assert head.terminal and batch.terminal and not JobHead.of(b'{"status": "queued"}').terminal
    assert JobHead.of(b"not json") == JobHead()
