"""The single-machine journal keeps status bodies as they are, reads what older versions
kept, and gives the retention period's bodies back one at a time."""

from __future__ import annotations

import json
import tracemalloc

from framewise import keys
from framewise.blobstore import BlobStore
from framewise.journal import Journal, enrolment_request, unfinished_jobs
from schemas.messages import IngestRequest

BODY = json.dumps(
    {"job_id": "video_a", "status": "finished", "result": {"note": 'quotes " and \\ and\nnew'}}
).encode()


def test_a_status_body_is_kept_byte_for_byte_with_its_owner(tmp_path):
    journal = Journal(tmp_path)
    journal.keep_status("video_a", BODY, "key_a", terminal=True)
    journal.keep_status("video_b", b'{"job_id":"video_b"}', None, terminal=False)
    assert list(journal.statuses()) == [
        ("video_a", "key_a", BODY),
        ("video_b", None, b'{"job_id":"video_b"}'),
    ]
    journal.forget_job("video_a")
    assert [job for job, _, _ in journal.statuses()] == ["video_b"]


def test_an_entry_kept_by_an_older_version_is_read_and_then_replaced(tmp_path):
    journal = Journal(tmp_path)
    old = tmp_path / "status" / "video_a.json"
    old.write_text(json.dumps({"owner": "key_a", "body": BODY.decode()}))
    assert list(journal.statuses()) == [("video_a", "key_a", BODY)]
    newer = BODY.replace(b"finished", b"failed")
    journal.keep_status("video_a", newer, "key_a", terminal=True)
    assert not old.exists() and list(journal.statuses()) == [("video_a", "key_a", newer)]


def test_keeping_a_megabyte_body_copies_none_of_it(tmp_path):
    journal = Journal(tmp_path)
    body = b'{"job_id":"video_a","thumbnail":"' + b"A" * 3_000_000 + b'"}'
    tracemalloc.start()
    journal.keep_status("video_a", body, "key_a", terminal=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # quoted as a JSON string inside JSON, it was held three more times (9 MB)
    assert peak < 200_000, f"{peak / 2**20:.1f} MiB allocated to keep it"
    assert next(journal.statuses())[2] == body


def test_the_planner_keeps_a_producers_request_but_never_one_of_an_ended_job(tmp_path):
    """The API keeps the requests it sends; one a producer published straight to the ingest
    topic is kept by the planner, unless the job has ended (the request came again)."""
    journal = Journal(tmp_path / "journal")
    direct = IngestRequest(
        job_id="video_straight00000001", media_type="video", video_blob_key="incoming/clip.mp4"
    )
    journal.keep_ingest_unless_known(direct)
    assert journal.unfinished() == [direct]
    through_api = direct.model_copy(update={"video_blob_key": "uploads/x/video"})
    journal.keep_ingest(through_api)
    journal.keep_ingest_unless_known(direct)  # the API's copy stands
    assert journal.unfinished() == [through_api]
    journal.keep_status(direct.job_id, BODY, None, terminal=True)  # ended: its request dropped
    journal.keep_ingest_unless_known(direct)  # delivered again after the job ended
    assert journal.ended(direct.job_id) and journal.unfinished() == []


def test_every_unfinished_job_is_submitted_again_but_one_that_ended_meanwhile(tmp_path):
    """A job whose media is gone is submitted too (the planner fails it, saying so); one
    whose final body was kept ended before the API kept its end."""
    journal, blobs = Journal(tmp_path / "journal"), BlobStore(tmp_path / "data")
    running, gone, ended = (
        IngestRequest(
            job_id=f"video_{name}0000000000000",
            media_type="video",
            video_blob_key=f"incoming/{name}.mp4",
        )
        for name in ("running", "gone", "ended")
    )
    for request in (running, gone, ended):
        journal.keep_ingest(request)
    blobs.put_bytes("incoming/running.mp4", b"video")
    blobs.put_bytes(keys.final_body(ended.job_id), b'{"status": "finished"}')
    again, ended_meanwhile = unfinished_jobs(journal, blobs)
    assert sorted(r.job_id for r in again) == [gone.job_id, running.job_id]
    assert ended_meanwhile == [ended.job_id]


def test_a_pending_enrolment_is_asked_again_with_the_images_the_api_stored(tmp_path):
    blobs = BlobStore(tmp_path / "data")
    record = {"label": "Tom", "status": "pending", "owner": "key_a"}
    assert enrolment_request("id_tom", record, blobs).blob_keys == []  # fails, saying so
    for i in (1, 0):
        blobs.put_bytes(keys.enrolment_image("id_tom", i), b"image")
    (blobs.path("allowlist/id_tom") / ".002.abc.tmp").write_bytes(b"half")  # a write under way
    request = enrolment_request("id_tom", record, blobs)
    assert request.blob_keys == ["allowlist/id_tom/000", "allowlist/id_tom/001"]
    assert (request.label, request.owner) == ("Tom", "key_a")
