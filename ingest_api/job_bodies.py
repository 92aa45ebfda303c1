"""Every job body an API replica can serve, with memory bounded however many jobs the
retention period holds.

A replica rebuilds this from the status topic when it starts, so it is a cache, not a record:
bodies live in a private SQLite file that is deleted on exit (no fsync, no journal), and only
the most recently read or written bodies (up to ``memory_bytes``) stay in memory. A body over
``FILE_BYTES`` (the final body of a long video: megabytes) is a file of its own beside it, and
is never held in memory: SQLite would copy it on insert and page it through its cache, and it
is read once or twice, not polled. Such a body is handed out as its file, which the API
streams; each is written to a new file and renamed over the old one, so a reader that opened
it keeps reading the body it opened.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tempfile
from collections import OrderedDict
from pathlib import Path

MEMORY_BYTES = 32 * 2**20
FILE_BYTES = 256 * 2**10

# A body as a replica keeps it: its bytes, or for a large body the file that holds them.
StoredBody = bytes | Path


class JobBodies:
    def __init__(self, directory: Path | None = None, memory_bytes: int = MEMORY_BYTES) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="framewise-status-", dir=directory))
        self._db = sqlite3.connect(self._dir / "bodies.sqlite", isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE bodies (job_id TEXT PRIMARY KEY, owner TEXT, status TEXT,"
            " updated_at REAL, flagged INTEGER NOT NULL DEFAULT 0, body BLOB,"
            " in_file INTEGER NOT NULL DEFAULT 0);"
        )
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._recent_bytes = 0
        self.memory_bytes = memory_bytes

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __len__(self) -> int:
        return self._db.execute(
            "SELECT count(*) FROM bodies WHERE body IS NOT NULL OR in_file"
        ).fetchone()[0]

    def put(self, job_id: str, body: bytes, status: str | None, updated_at: float | None) -> None:
        """``updated_at``: seconds since the epoch, for retention."""
        in_file = len(body) > FILE_BYTES
        if in_file:
            written = self._file(job_id).with_suffix(".new")
            written.write_bytes(body)
            os.replace(written, self._file(job_id))
        self._db.execute(
            "INSERT INTO bodies (job_id, status, updated_at, body, in_file) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(job_id) DO UPDATE SET status=excluded.status, "
            "updated_at=excluded.updated_at, body=excluded.body, in_file=excluded.in_file",
            (job_id, status, updated_at, None if in_file else body, in_file),
        )
        if in_file:
            self._drop(job_id)
        else:
            self._file(job_id).unlink(missing_ok=True)
            self._keep(job_id, body)

    def get(self, job_id: str) -> StoredBody | None:
        """The body of ``job_id``: its bytes, or the file of a large one (not read here)."""
        body = self._recent.get(job_id)
        if body is not None:
            self._keep(job_id, body)
            return body
        row = self._db.execute(
            "SELECT body, in_file FROM bodies WHERE job_id=?", (job_id,)
        ).fetchone()
        if row is None:
            return None
        if row[1]:
            return self._file(job_id)
        if row[0] is not None:
            self._keep(job_id, row[0])
        return row[0]

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
        self._file(job_id).unlink(missing_ok=True)
        self._drop(job_id)

    def _file(self, job_id: str) -> Path:
        """Where a large body of ``job_id`` is (any id: a direct producer chooses its own)."""
        return self._dir / hashlib.sha256(job_id.encode()).hexdigest()

    def _drop(self, job_id: str) -> None:
        body = self._recent.pop(job_id, None)
        if body is not None:
            self._recent_bytes -= len(body)

    def _keep(self, job_id: str, body: bytes) -> None:
        self._drop(job_id)
        self._recent[job_id] = body
        self._recent_bytes += len(body)
        while self._recent_bytes > self.memory_bytes and len(self._recent) > 1:
            _, dropped = self._recent.popitem(last=False)
            self._recent_bytes -= len(dropped)
