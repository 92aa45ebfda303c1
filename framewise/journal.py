"""What must survive a restart when the broker cannot keep it.

The embedded broker keeps data in memory only, so on a single machine Framewise keeps its own
durable copy, under ``<data_dir>/journal``: the latest status body of every job (with the key
that owns it), the ingest request of every job not yet ended, every allowlist record, and
every webhook delivery not yet ended. The API writes the first three as it reads the topics
(and an ingest request before it sends it; the planner keeps one that a producer published
straight to the ingest topic); the aggregator keeps a delivery as it publishes it, and the
webhook worker drops it once its outcome is out. ``framewise up`` replays it into a fresh
broker before the workers start (and after restarting a broker that died), so finished and
failed jobs stay readable, unfinished ones run again from their media, the allowlist is kept
(an enrolment still pending is asked for again) and webhooks still being retried go on. On a
real Kafka cluster the topics themselves are durable, and the journal is off unless
configured.
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
from framewise.kafka import to_bytes
from schemas.api import JobHead
from schemas.messages import AllowlistEnrollment, IngestRequest, WebhookDelivery

log = logging.getLogger(__name__)

STATUS_SUFFIX = ".status"  # a job's latest status: a JSON line with its owner, then the body


class Journal:
    def __init__(self, root: Path) -> None:
        self.root = root
        for part in ("status", "ingest", "allowlist", "webhooks"):
            (root / part).mkdir(parents=True, exist_ok=True)

    @classmethod
    def of(cls, settings: Settings) -> Journal | None:
        return cls(settings.data_dir / "journal") if settings.journal_enabled else None

    def _path(self, part: str, name: str, suffix: str = ".json") -> Path:
        safe = name.replace("/", "_")
        return self.root / part / f"{safe}{suffix}"

    def _write(self, path: Path, data: dict) -> None:
        self._write_bytes(path, json.dumps(data).encode())

    def _write_bytes(self, path: Path, *parts: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                out.write(part)
        os.replace(tmp, path)

    def keep_status(self, job_id: str, body: bytes, owner: str | None, terminal: bool) -> None:
        """Keep a job's latest status body; once it is ``terminal`` the job will not run
        again, so its ingest request is dropped.

        The file is a line of JSON with the owner, then the body's bytes as they are: a long
        video's body is megabytes, and quoting it as a JSON string inside JSON made the API
        hold it three more times (13 MiB more at the peak for a 2.8 MB body)."""
        header = json.dumps({"owner": owner}).encode() + b"\n"
        self._write_bytes(self._path("status", job_id, STATUS_SUFFIX), header, body)
        self._path("status", job_id).unlink(missing_ok=True)  # as kept before, if it was
        if terminal:
            self._path("ingest", job_id).unlink(missing_ok=True)

    def keep_ingest(self, request: IngestRequest) -> None:
        self._write(self._path("ingest", request.job_id), request.model_dump(mode="json"))

    def keep_ingest_unless_known(self, request: IngestRequest) -> None:
        """The planner's copy of a job's ingest request: for a job a producer published
        straight to the ingest topic, which the API never saw. Not where the API kept it
        already, nor for a job that has ended (a request delivered again)."""
        if not self._path("ingest", request.job_id).exists() and not self.ended(request.job_id):
            self.keep_ingest(request)

    def ended(self, job_id: str) -> bool:
        """Whether the job's kept status is terminal."""
        path = self._path("status", job_id, STATUS_SUFFIX)
        try:
            body = path.read_bytes().split(b"\n", 1)[1]
        except (OSError, IndexError):
            return False
        return JobHead.of(body).terminal

    def keep_identity(self, identity_id: str, record: bytes | None) -> None:
        path = self._path("allowlist", identity_id)
        if record is None:
            path.unlink(missing_ok=True)
        else:
            self._write(path, json.loads(record))

    def keep_webhook(self, delivery: WebhookDelivery) -> None:
        """A job's webhook delivery, until its outcome is out (a job delivers once, at its
        end)."""
        self._write(self._path("webhooks", delivery.job_id), delivery.model_dump(mode="json"))

    def forget_webhook(self, job_id: str) -> None:
        self._path("webhooks", job_id).unlink(missing_ok=True)

    def forget_job(self, job_id: str) -> None:
        self._path("status", job_id, STATUS_SUFFIX).unlink(missing_ok=True)
        for part in ("status", "ingest", "webhooks"):
            self._path(part, job_id).unlink(missing_ok=True)

    def _read(self, part: str) -> Iterator[tuple[str, dict]]:
        for path in sorted((self.root / part).glob("*.json")):
            try:
                yield path.stem, json.loads(path.read_text())
            except (OSError, ValueError):
                log.warning("journal entry %s is unreadable; skipped", path)

    def statuses(self) -> Iterator[tuple[str, str | None, bytes]]:
        """(job id, owner, body) of every job, read one at a time: the retention period's
        bodies together would be gigabytes. Entries kept before bodies were stored as they
        are (``{"owner": ..., "body": "..."}``) are read too."""
        for job_id, data in self._read("status"):
            yield job_id, data.get("owner"), data["body"].encode()
        for path in sorted((self.root / "status").glob(f"*{STATUS_SUFFIX}")):
            try:
                header, body = path.read_bytes().split(b"\n", 1)
                owner = json.loads(header).get("owner")
            except (OSError, ValueError):
                log.warning("journal entry %s is unreadable; skipped", path)
                continue
            yield path.name.removesuffix(STATUS_SUFFIX), owner, body

    def unfinished(self) -> list[IngestRequest]:
        return [IngestRequest.model_validate(data) for _, data in self._read("ingest")]

    def identities(self) -> dict[str, dict]:
        return dict(self._read("allowlist"))

    def webhooks(self) -> list[WebhookDelivery]:
        return [WebhookDelivery.model_validate(data) for _, data in self._read("webhooks")]


def unfinished_jobs(journal: Journal, blobs: BlobStore) -> tuple[list[IngestRequest], list[str]]:
    """The jobs kept as not ended: those to submit again, and those that did end but whose
    end the API had not kept yet (their final body is in the blob store). One whose media is
    gone is submitted all the same: the planner fails it, saying the media is not stored,
    where leaving it out would leave it unfinished for good."""
    again, ended = [], []
    for request in journal.unfinished():
        if blobs.exists(keys.final_body(request.job_id)):
            ended.append(request.job_id)
        else:
            again.append(request)
    return again, ended


def enrolment_request(identity_id: str, record: dict, blobs: BlobStore) -> AllowlistEnrollment:
    """The enrolment of an identity still pending, from its record and the images the API
    stored for it (none left: the face worker records it as failed, saying so)."""
    return AllowlistEnrollment(
        identity_id=identity_id,
        label=record["label"],
        blob_keys=blobs.keys_under(keys.enrolment_prefix(identity_id)),
        owner=record.get("owner"),
    )


async def replay(journal: Journal, settings: Settings, blobs: BlobStore) -> tuple[int, int, int]:
    """Publish the journal into a fresh broker: every status, every allowlist record (and the
    enrolment of each one still pending), the ingest request of every job that had not ended
    (it runs again from its media; where it did end, its final body) and every webhook
    delivery that had not (its attempts so far still count). Partial frames of interrupted
    work are deleted, as are uploads of jobs that ended. Returns the numbers of jobs, jobs
    resumed and identities."""
    jobs = 0
    unfinished, ended = unfinished_jobs(journal, blobs)
    identities = journal.identities()
    shutil.rmtree(blobs.root / "frames", ignore_errors=True)

    def forget_media(job_id: str) -> None:  # a job that ended keeps only its results
        for prefix in keys.transient_prefixes(job_id):
            blobs.delete_prefix(prefix)

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, max_request_size=settings.max_message_bytes
    )
    await producer.start()
    send = producer.send_and_wait
    try:
        for job_id, owner, body in journal.statuses():
            jobs += 1
            headers = [(keys.OWNER_HEADER, owner.encode())] if owner else None
            await send(topics.JOB_STATUS.name, body, key=keys.job_key(job_id), headers=headers)
            if JobHead.of(body).terminal:
                forget_media(job_id)
        for job_id in ended:  # after its last status kept: the end supersedes it
            final = blobs.get_bytes(keys.final_body(job_id))
            await send(topics.JOB_STATUS.name, final, key=keys.job_key(job_id))
            forget_media(job_id)
        for identity_id, record in identities.items():
            key = identity_id.encode()
            await send(topics.ALLOWLIST.name, json.dumps(record).encode(), key=key)
            if record.get("status") == "pending":  # its request was on the lost topic
                request = enrolment_request(identity_id, record, blobs)
                await send(topics.ALLOWLIST_REQUESTS.name, to_bytes(request), key=key)
        for job in unfinished:
            await send(topics.INGEST.name, to_bytes(job), key=keys.job_key(job.job_id))
        for delivery in journal.webhooks():
            await send(topics.WEBHOOKS.name, to_bytes(delivery), key=keys.job_key(delivery.job_id))
    finally:
        await producer.stop()
    log.info(
        "journal replayed: %d jobs (%d resumed), %d identities",
        jobs,
        len(unfinished),
        len(identities),
    )
    return jobs, len(unfinished), len(identities)
