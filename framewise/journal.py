"""What must survive a restart when the broker cannot keep it.

The embedded broker keeps data in memory only, so on a single machine Framewise keeps its own
durable copy, under ``<data_dir>/journal``: the latest status body of every job (with the key
that owns it), the ingest request of every job not yet ended, and every allowlist record. The
API writes it as it reads the topics; ``framewise up`` replays it into a fresh broker before
the workers start (and after restarting a broker that died), so finished and failed jobs stay
readable, unfinished ones run again from their upload, and the allowlist is kept. On a real
Kafka cluster the topics themselves are durable, and the journal is off unless configured.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from aiokafka import AIOKafkaProducer

from framewise import keys, topics
from framewise.blobstore import BlobStore
from framewise.config import Settings
from schemas.api import JobHead
from schemas.messages import IngestRequest

log = logging.getLogger(__name__)


class Journal:
    def __init__(self, root: Path) -> None:
        self.root = root
        for part in ("status", "ingest", "allowlist"):
            (root / part).mkdir(parents=True, exist_ok=True)

    @classmethod
    def of(cls, settings: Settings) -> Journal | None:
        return cls(settings.data_dir / "journal") if settings.journal_enabled else None

    def _path(self, part: str, name: str) -> Path:
        safe = name.replace("/", "_")
        return self.root / part / f"{safe}.json"

    def _write(self, path: Path, data: dict) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(tmp, path)

    def keep_status(self, job_id: str, body: bytes, owner: str | None, terminal: bool) -> None:
        """Keep a job's latest status body; once it is ``terminal`` the job will not run
        again, so its ingest request is dropped."""
        self._write(self._path("status", job_id), {"owner": owner, "body": body.decode()})
        if terminal:
            self._path("ingest", job_id).unlink(missing_ok=True)

    def keep_ingest(self, request: IngestRequest) -> None:
        self._write(self._path("ingest", request.job_id), request.model_dump(mode="json"))

    def keep_identity(self, identity_id: str, record: bytes | None) -> None:
        path = self._path("allowlist", identity_id)
        if record is None:
            path.unlink(missing_ok=True)
        else:
            self._write(path, json.loads(record))

    def forget_job(self, job_id: str) -> None:
        for part in ("status", "ingest"):
            self._path(part, job_id).unlink(missing_ok=True)

    def _read(self, part: str) -> Iterator[tuple[str, dict]]:
        for path in sorted((self.root / part).glob("*.json")):
            try:
                yield path.stem, json.loads(path.read_text())
            except (OSError, ValueError):
                log.warning("journal entry %s is unreadable; skipped", path)

    def statuses(self) -> dict[str, tuple[str | None, str]]:
        """job id -> (owner, body)."""
        return {job: (data.get("owner"), data["body"]) for job, data in self._read("status")}

    def unfinished(self) -> list[IngestRequest]:
        return [IngestRequest.model_validate(data) for _, data in self._read("ingest")]

    def identities(self) -> dict[str, dict]:
        return dict(self._read("allowlist"))


def _resumable(request: IngestRequest, blobs: BlobStore) -> bool:
    """Its media is still here: the upload, or images carried in the request itself."""
    upload = blobs.path(keys.transient_prefixes(request.job_id)[0])
    inline = bool(request.images) and all(i.data_base64 for i in request.images)
    return upload.exists() or inline


async def replay(journal: Journal, settings: Settings, blobs: BlobStore) -> tuple[int, int, int]:
    """Publish the journal into a fresh broker: every status, every allowlist record, and the
    ingest request of every job that had not ended (it runs again from its upload). Partial
    frames of interrupted work are deleted, as are uploads of jobs that ended. Returns the
    numbers of jobs, jobs resumed and identities."""
    statuses = journal.statuses()
    unfinished = [r for r in journal.unfinished() if _resumable(r, blobs)]
    shutil.rmtree(blobs.root / "frames", ignore_errors=True)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, max_request_size=settings.max_message_bytes
    )
    await producer.start()
    try:
        for job_id, (owner, body) in statuses.items():
            headers = [(keys.OWNER_HEADER, owner.encode())] if owner else None
            await producer.send_and_wait(
                topics.JOB_STATUS.name, body.encode(), key=keys.job_key(job_id), headers=headers
            )
            if JobHead.of(body.encode()).terminal:
                for prefix in keys.transient_prefixes(job_id):
                    blobs.delete_prefix(prefix)
        for identity_id, record in journal.identities().items():
            await producer.send_and_wait(
                topics.ALLOWLIST.name, json.dumps(record).encode(), key=identity_id.encode()
            )
        for request in unfinished:
            await producer.send_and_wait(
                topics.INGEST.name,
                request.model_dump_json(exclude_none=True).encode(),
                key=keys.job_key(request.job_id),
            )
    finally:
        await producer.stop()
    log.info(
        "journal replayed: %d jobs (%d resumed), %d identities",
        len(statuses),
        len(unfinished),
        len(journal.identities()),
    )
    return len(statuses), len(unfinished), len(journal.identities())
