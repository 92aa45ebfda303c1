"""Export every REST body and Kafka message as JSON Schema files (published in ``docs/schemas``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas import api, messages

EXPORTED: dict[str, Any] = {
    "video-job": api.VideoJob,
    "image-batch-job": api.ImageBatchJob,
    "image-batch-request": api.ImageBatchRequest,
    "job-accepted": api.JobAccepted,
    "latency-report": api.LatencyReport,
    "problem": api.Problem,
    "allowlist-enroll-request": api.AllowlistEnrollRequest,
    "allowlist-identity": api.AllowlistIdentity,
    "allowlist-record": messages.AllowlistRecord,
    "allowlist-enrollment": messages.AllowlistEnrollment,
    "ingest-request": messages.IngestRequest,
    "decode-task": messages.DecodeTask,
    "frame-batch": messages.FrameBatch,
    "job-event": messages.job_event_adapter,
    "webhook-delivery": messages.WebhookDelivery,
    "dead-letter": messages.DeadLetter,
}


def json_schemas() -> dict[str, dict]:
    """Name -> JSON Schema (draft 2020-12) of every exported body."""
    out = {}
    for name, model in EXPORTED.items():
        schema = (
            model.model_json_schema()
            if isinstance(model, type) and issubclass(model, BaseModel)
            else model.json_schema()
        )
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://framewise.dev/schemas/v1/{name}.schema.json"
        out[name] = schema
    return out


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
