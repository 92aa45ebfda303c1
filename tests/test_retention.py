"""Retention: old media and job bodies go, recent ones stay."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

from framewise.blobstore import BlobStore
from framewise.retention import expired_jobs, sweep_blobs


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
    bodies = {
        "video_a": {"status": "finished", "updated_at": (now - timedelta(hours=3)).isoformat()},
        "video_b": {"status": "processing", "updated_at": (now - timedelta(hours=3)).isoformat()},
        "video_c": {"status": "failed", "updated_at": now.isoformat()},
    }
    assert expired_jobs(bodies, max_age_s=3600) == ["video_a"]
