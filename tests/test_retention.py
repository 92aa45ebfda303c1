"""Retention: old media and job bodies go, recent ones stay."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.retention import sweep_blobs
from ingest_api.status_view import StatusView


def test_old_media_is_deleted_recent_media_kept(tmp_path):
    blobs = BlobStore(tmp_path)
    blobs.put_bytes("uploads/video_old/video", b"x")
    blobs.put_bytes("frames/video_old/motion/0.npy", b"x")
    blobs.put_bytes("uploads/video_new/video", b"x")
    old = time.time() - 7200
    for path in (tmp_path / "uploads" / "video_old", tmp_path / "frames" / "video_old"):
        os.utime(path, (old, old))
    removed = sweep_blobs(blobs, max_age_s=3600)
    assert sorted(p.name for p in removed) == ["video_old", "video_old"]
    assert blobs.exists("uploads/video_new/video")
    assert not (tmp_path / "uploads" / "video_old").exists()


def test_only_old_terminal_jobs_expire():
    now = datetime.now(UTC)
    view = StatusView(Settings())
    for job_id, status, age in [
        ("video_a", "finished", timedelta(hours=3)),
        ("video_b", "processing", timedelta(hours=3)),
        ("video_c", "failed", timedelta(0)),
    ]:
        body = {"job_id": job_id, "status": status, "updated_at": (now - age).isoformat()}
        view.apply(job_id, json.dumps(body).encode())
    assert view.expired(max_age_s=3600) == ["video_a"]
    view.forget(["video_a"])
    assert view.jobs.get("video_a") is None and view.jobs.get("video_b") is not None
