"""Every job body an API replica can serve, with memory bounded however many jobs the
retention period holds.

A replica rebuilds this from the status topic when it starts, so it is a cache, not a record:
bodies live in a private SQLite file that is deleted on exit (no fsync, no journal), and only
the most recently read or written bodies (up to ``memory_bytes``) stay in memory.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections import OrderedDict
from pathlib import Path

MEMORY_BYTES = 32 * 2**20


class JobBodies:
    def __init__(self, directory: Path | None = None, memory_bytes: int = MEMORY_BYTES) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="framewise-status-", dir=directory))
        self._db = sqlite3.connect(self._dir / "bodies.sqlite", isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE bodies (job_id TEXT PRIMARY KEY, owner TEXT, status TEXT,"
            " updated_at REAL, flagged INTEGER NOT NULL DEFAULT 0, body BLOB);"
        )
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._recent_bytes = 0
        self.memory_bytes = memory_bytes

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM bodies WHERE body IS NOT NULL").fetchone()[0]

    def put(self, job_id: str, body: bytes, status: str | None, updated_at: float | None) -> None:
        """``updated_at``: seconds since the epoch, for retention."""
        self._db.execute(
            "INSERT INTO bodies (job_id, status, updated_at, body) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(job_id) DO UPDATE SET status=excluded.status, "
            "updated_at=excluded.updated_at, body=excluded.body",
            (job_id, status, updated_at, body),
        )
        self._keep(job_id, body)

    def get(self, job_id: str) -> bytes | None:
        body = self._recent.get(job_id)
        if body is None:
            row = self._db.execute("SELECT body FROM bodies WHERE job_id=?", (job_id,)).fetchone()
            body = row[0] if row else None
        if body is not None:
            self._keep(job_id, body)
        return body

    def set_owner(self, job_id: str, owner: str) -> None:
        self._db.execute(
            "INSERT INTO bodies (job_id, owner) VALUES (?, ?) "
            "ON CONFLICT(job_id) DO UPDATE SET owner=excluded.owner",
            (job_id, owner),
        )

    def owner(self, job_id: str) -> str | None:
        row = self._db.execute("SELECT owner FROM bodies WHERE job_id=?", (job_id,)).fetchone()
        return row[0] if row else None

    def flag_once(self, job_id: str) -> bool:
        """True the first time it is called for ``job_id`` (a webhook failure counts once)."""
        cursor = self._db.execute(
            "UPDATE bodies SET flagged=1 WHERE job_id=? AND flagged=0", (job_id,)
        )
        return cursor.rowcount == 1

    def ended_before(self, cutoff: float) -> list[str]:
        """Finished or failed jobs last updated before ``cutoff`` (epoch seconds; retention)."""
        rows = self._db.execute(
            "SELECT job_id FROM bodies WHERE status IN ('finished', 'failed') AND updated_at < ?",
            (cutoff,),
        )
        return [row[0] for row in rows]

    def forget(self, job_id: str) -> None:
        self._db.execute("DELETE FROM bodies WHERE job_id=?", (job_id,))
        body = self._recent.pop(job_id, None)
        if body is not None:
            self._recent_bytes -= len(body)

    def _keep(self, job_id: str, body: bytes) -> None:
        previous = self._recent.pop(job_id, None)
        if previous is not None:
            self._recent_bytes -= len(previous)
        self._recent[job_id] = body
        self._recent_bytes += len(body)
        while self._recent_bytes > self.memory_bytes and len(self._recent) > 1:
            _, dropped = self._recent.popitem(last=False)
            self._recent_bytes -= len(dropped)
