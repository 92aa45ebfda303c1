"""Retention: stored media and job bodies are deleted after ``FRAMEWISE_RETENTION_HOURS``.

Kafka topics expire by their own retention; this removes what lives outside them: blob-store
directories of jobs that never ended (a finished job's frames are deleted at once) and the
keyframes the results viewer shows, the terminal bodies the aggregator keeps for
re-publishing, and job bodies held in an API replica's memory.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from framewise.blobstore import BlobStore

SWEPT_PREFIXES = ("uploads", "frames", "allowlist", "incoming", "thumbs", "webhooks", "results")


def sweep_blobs(blobs: BlobStore, max_age_s: float, now: float | None = None) -> list[Path]:
    """Delete job directories (and stray files) older than ``max_age_s``; return them."""
    cutoff = (now or time.time()) - max_age_s
    removed = []
    for prefix in SWEPT_PREFIXES:
        root = blobs.root / prefix
        if not root.is_dir():
            continue
        for entry in root.iterdir():
            try:
                if entry.stat().st_mtime >= cutoff:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
            except FileNotFoundError:
                continue
    return removed
