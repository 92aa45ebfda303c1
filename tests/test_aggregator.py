"""The aggregator's state machine, the planner and the assembly as plain code: dicts for
tables, a fake clock, no Kafka."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from framewise import topics
from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.journal import Journal
from framewise.kafka import to_bytes
from schemas.api import ErrorCode, JobError, JobStatus, VideoJob, WebhookConfig
from schemas.messages import (
    BatchResult,
    DeadlinePassed,
    DecodeTask,
    ImageSource,
    IngestRequest,
    JobPlanned,
    Reconcile,
    SegmentDecoded,
    WebhookOutcome,
    job_event_adapter,
)
from stages.aggregator import assembly
from stages.aggregator.aggregator import Aggregator, Outcome, body_json, fitting_body_json
from stages.decode.planner import plan
from stages.local import run_video_stages
from stages.tag.settings import TagSettings

JOB = "image_batch_aggregator_unit_01"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def aggregator(tmp_path, clock) -> Aggregator:
    settings = Settings(
        stages=["tag"], data_dir=tmp_path, stall_timeout_s=60, max_reconciliations=1
    )
    return Aggregator({}, {}, {}, settings, BlobStore(tmp_path), clock=clock)


def run(aggregator: Aggregator, event) -> Outcome:
    return asyncio.run(aggregator.handle(event))


def planned(clock: Clock, deadline: float | None = None) -> JobPlanned:
    tasks = [
        DecodeTask(
            job_id=JOB, media_type="image", blob_key=f"uploads/{JOB}/{i:05d}", segment_index=i,
            stages=["tag"], profiles=["detail"],
        )
        for i in range(2)
    ]  # fmt: skip
    return JobPlanned(
        job_id=JOB,
        media_type="image",
        stages=["tag"],
        n_segments=2,
        external_ids=["cat", "broken"],
        deadline=deadline,
        submitted_at="2026-11-25T00:00:00Z",
        decode_tasks=tasks,
    )


CAT = BatchResult(
    job_id=JOB, stage="tag", segment_index=0, batch_index=0,
    payload={"frames": [{"t": 0.0, "tags": {"cat": 0.9}}]},
)  # fmt: skip
DECODED = SegmentDecoded(job_id=JOB, segment_index=0, batches={"detail": 1})
BROKEN = SegmentDecoded(
    job_id=JOB, segment_index=1, batches={},
    error=JobError(code=ErrorCode.unsupported_media, message="not a decodable image"),
)  # fmt: skip


def finish(aggregator: Aggregator, clock: Clock) -> Outcome:
    run(aggregator, planned(clock))
    run(aggregator, DECODED)
    run(aggregator, CAT)
    return run(aggregator, BROKEN)


def test_a_job_is_finalised_once_with_every_item(aggregator, clock):
    outcome = finish(aggregator, clock)
    assert outcome.finalised == JOB
    assert [s.topic for s in outcome.sends] == [topics.JOB_STATUS, topics.RESULTS]
    body = json.loads(aggregator.value_of(outcome.sends[1]))
    cat, broken = body["items"]
    assert body["status"] == "finished" and cat["result"]["tags"][0]["tag"] == "cat"
    assert broken["status"] == "failed" and "decodable" in broken["error"]["message"]
    aggregator.published(JOB)
    for event in (CAT, DECODED, BROKEN, planned(clock)):  # redeliveries change nothing
        assert run(aggregator, event) == Outcome()


def test_final_sends_name_the_kept_body_rather_than_hold_it(aggregator, clock):
    """A long video's body is megabytes: the outcome names the body kept in the blob store,
    and the agent reads it only to hand it to the Kafka client."""
    outcome = finish(aggregator, clock)
    assert [s.stored for s in outcome.sends] == [f"results/{JOB}.json"] * 2
    assert [s.value for s in outcome.sends] == [b"", b""]


def test_a_crash_before_publishing_repeats_the_publication(aggregator, clock):
    first = finish(aggregator, clock)
    # The worker died after the body was kept but before published(): the next event of the
    # job (here a redelivered batch) sends the same body again.
    again = run(aggregator, CAT)
    assert again.finalised == JOB and aggregator.value_of(again.sends[1]) == aggregator.value_of(
        first.sends[1]
    )


def test_payloads_are_held_deflated_and_plain_json_from_an_older_changelog_still_reads(
    aggregator, clock
):
    run(aggregator, planned(clock))
    run(aggregator, DECODED)
    run(aggregator, CAT)
    (stored,) = aggregator.batches.values()
    assert isinstance(stored, bytes) and not stored.startswith(b"{")
    assert assembly.loaded_payload(stored) == CAT.payload
    # a table recovered from a changelog written before payloads were deflated
    (key,) = aggregator.batches
    aggregator.batches[key] = json.dumps(CAT.payload).encode()
    body = json.loads(aggregator.value_of(run(aggregator, BROKEN).sends[1]))
    assert body["items"][0]["result"]["tags"][0]["tag"] == "cat"


def test_published_forgets_batches_media_and_timers(aggregator, clock, tmp_path):
    blobs = aggregator.blobs
    blobs.put_bytes(f"frames/{JOB}/detail/00000-00000.npy", b"x")
    blobs.put_bytes(f"uploads/{JOB}/00000", b"x")
    finish(aggregator, clock)
    assert aggregator.batches and JOB in aggregator.last_status
    aggregator.published(JOB)
    assert aggregator.batches == {} and JOB not in aggregator.last_status
    assert not blobs.exists(f"frames/{JOB}/detail/00000-00000.npy")
    assert not blobs.exists(f"uploads/{JOB}/00000")
    assert aggregator.load(JOB).published


def test_the_final_body_is_kept_in_the_blob_store_not_in_the_tables(aggregator, clock):
    outcome = finish(aggregator, clock)
    body = aggregator.value_of(outcome.sends[1])
    assert aggregator.blobs.get_bytes(f"results/{JOB}.json") == body
    assert b"items" in body and "items" not in json.dumps(aggregator.jobs[JOB])  # small changelog
    aggregator.published(JOB)
    delivered = WebhookOutcome(job_id=JOB, delivery_id="evt", delivered=True, attempts=1)
    patched = run(aggregator, delivered)  # no webhook was asked for: the body is patched anyway
    assert json.loads(aggregator.value_of(patched.sends[0]))["webhook"]["delivered"] is True
    assert aggregator.blobs.get_bytes(f"results/{JOB}.json") == aggregator.value_of(
        patched.sends[0]
    )


def test_a_webhook_is_journaled_until_its_outcome_even_across_a_fresh_broker(tmp_path, clock):
    """On the embedded broker the journal keeps the delivery the aggregator publishes (its
    agent keeps ``Outcome.webhook`` before sending). After a restart its tables start empty,
    and the outcome of the replayed delivery still reaches the job's kept body."""
    settings = Settings(stages=["tag"], data_dir=tmp_path)
    journal, blobs = Journal(tmp_path / "journal"), BlobStore(tmp_path)
    aggregator = Aggregator({}, {}, {}, settings, blobs, clock=clock)
    hook = WebhookConfig(url="https://example.com/hook", secret="s3cr3t")
    run(aggregator, planned(clock).model_copy(update={"webhook": hook}))
    run(aggregator, DECODED)
    run(aggregator, CAT)
    outcome = run(aggregator, BROKEN)
    assert [s.topic for s in outcome.sends][-1] == topics.WEBHOOKS
    assert outcome.sends[-1].value == to_bytes(outcome.webhook)
    journal.keep_webhook(outcome.webhook)
    (kept,) = journal.webhooks()
    assert (kept.job_id, kept.url, kept.secret) == (JOB, hook.url, "s3cr3t")
    restarted = Aggregator({}, {}, {}, settings, blobs, clock=clock)
    delivered = WebhookOutcome(job_id=JOB, delivery_id=kept.delivery_id, delivered=True, attempts=3)
    patched = run(restarted, delivered)
    assert [s.topic for s in patched.sends] == [topics.JOB_STATUS]
    body = json.loads(restarted.value_of(patched.sends[0]))
    assert body["status"] == "finished" and body["webhook"] == {"delivered": True, "attempts": 3}
    journal.forget_job(JOB)  # the retention's sweep takes the delivery too
    assert journal.webhooks() == []


def test_a_result_too_large_for_one_message_fails_the_job_and_says_why(tmp_path, clock):
    """A final body that one Kafka message cannot carry would never reach a client: the job
    fails at once with a body that fits and an error that names the setting to raise."""
    limit = 512 * 1024
    settings = Settings(stages=["tag"], data_dir=tmp_path, max_message_bytes=limit)
    settings = settings.with_groups(TagSettings(top_k=100_000, min_probability=0.0))
    aggregator = Aggregator({}, {}, {}, settings, BlobStore(tmp_path), clock=clock)
    tags = {f"a rather long tag name, number {i:06d}": 0.5 for i in range(20_000)}
    many = CAT.model_copy(update={"payload": {"frames": [{"t": 0.0, "tags": tags}]}})
    run(aggregator, planned(clock))
    run(aggregator, DECODED)
    run(aggregator, many)
    outcome = run(aggregator, BROKEN)
    assert outcome.finalised == JOB and all(
        len(aggregator.value_of(s)) < limit for s in outcome.sends
    )
    body = json.loads(aggregator.value_of(outcome.sends[1]))
    assert body["status"] == "failed" and body["error"]["code"] == "internal"
    assert "MiB" in body["error"]["message"]
    assert "FRAMEWISE_MAX_MESSAGE_BYTES" in body["error"]["message"]
    assert aggregator.blobs.get_bytes(f"results/{JOB}.json") == aggregator.value_of(
        outcome.sends[1]
    )


def test_a_body_too_long_for_one_message_gives_each_face_thumbnail_once(face_settings, tom_video):
    """Tom Hanks is in both scenes of tom_video. Where the body is larger than a message may
    be, his thumbnail is given only where he first appears (it is optional; his person_id
    links the scenes); nothing else changes. Smaller still, the body cannot be sent."""
    result = run_video_stages(tom_video, face_settings)
    body = VideoJob(job_id="video_thumbnails_once", status=JobStatus.finished, result=result)
    full = body_json(body)
    assert fitting_body_json(body, len(full)) == full
    compact = fitting_body_json(body, len(full) - 1)
    assert compact is not None and len(compact) < len(full) - 5000
    first, second = json.loads(compact)["result"]["person_constellation_scenes"]
    assert len(first["person_ids"]) == 7
    assert all(p["face_thumbnail"] for p in first["person_ids"])
    (tom,) = second["person_ids"]
    assert "face_thumbnail" not in tom
    assert tom["person_id"] in {p["person_id"] for p in first["person_ids"]}
    expected = json.loads(full)
    del expected["result"]["person_constellation_scenes"][1]["person_ids"][0]["face_thumbnail"]
    assert json.loads(compact) == expected
    assert fitting_body_json(body, len(compact) - 1) is None


def test_a_published_job_is_forgotten_after_the_retention(aggregator, clock):
    finish(aggregator, clock)
    clock.now += 8 * 24 * 3600
    assert not any(b"job_expired" in s.value for s in aggregator.due())  # not yet published
    aggregator.published(JOB)
    clock.now += aggregator.settings.retention_hours * 3600 - 10
    assert not any(b"job_expired" in s.value for s in aggregator.due())  # not old enough
    clock.now += 20
    expiries = [s for s in aggregator.due() if b"job_expired" in s.value]
    assert len(expiries) == 1 and expiries[0].topic == topics.JOB_EVENTS
    assert not any(b"job_expired" in s.value for s in aggregator.due())  # asked once
    assert run(aggregator, job_event_adapter.validate_json(expiries[0].value)) == Outcome()
    assert JOB not in aggregator.jobs
    assert run(aggregator, CAT) == Outcome()  # a late redelivery finds no job and is dropped


def test_deadline_fails_the_job_once(aggregator, clock):
    run(aggregator, planned(clock, deadline=clock.now + 10))
    assert not [s for s in aggregator.due() if b"deadline" in s.value]
    clock.now += 11
    events = [s for s in aggregator.due() if b"deadline_passed" in s.value]
    assert len(events) == 1 and events[0].topic == topics.JOB_EVENTS
    assert not [s for s in aggregator.due() if b"deadline_passed" in s.value]  # sent once
    outcome = run(aggregator, DeadlinePassed(job_id=JOB))
    body = json.loads(aggregator.value_of(outcome.sends[0]))
    assert body["status"] == "failed" and body["error"]["code"] == "processing_timeout"


def test_a_stalled_job_is_decoded_again_then_failed(aggregator, clock):
    run(aggregator, planned(clock))
    run(aggregator, DECODED)
    run(aggregator, CAT)  # segment 1 never reports
    assert run(aggregator, Reconcile(job_id=JOB)) == Outcome()  # progress is recent
    clock.now += 61
    assert any(b"reconcile" in s.value for s in aggregator.due())
    retry = run(aggregator, Reconcile(job_id=JOB))
    assert [s.topic for s in retry.sends] == [topics.DECODE_TASKS]
    assert DecodeTask.model_validate_json(aggregator.value_of(retry.sends[0])).segment_index == 1
    clock.now += 61
    failed = run(aggregator, Reconcile(job_id=JOB))
    body = json.loads(aggregator.value_of(failed.sends[0]))
    assert body["status"] == "failed" and "reconciliations" in body["error"]["message"]


def test_a_job_waiting_its_turn_behind_other_jobs_is_not_stalled(aggregator, clock):
    """Under load a job waits in a queue (the decoders' or a stage's) longer than the stall
    timeout. While other jobs move it is neither decoded again (a duplicate at the back of the
    queue) nor failed after FRAMEWISE_MAX_RECONCILIATIONS (1 here); once nothing moves, it is
    reconciled as before."""
    run(aggregator, planned(clock))
    run(aggregator, DECODED)
    run(aggregator, CAT)  # segment 1 waits for a decoder
    other = "image_batch_aggregator_unit_02"
    tasks = [t.model_copy(update={"job_id": other}) for t in planned(clock).decode_tasks]
    run(aggregator, planned(clock).model_copy(update={"job_id": other, "decode_tasks": tasks}))
    run(aggregator, DECODED.model_copy(update={"job_id": other, "batches": {"detail": 12}}))
    for batch in range(12):  # five minutes of the other job's batches, one every 25 s
        clock.now += 25
        run(aggregator, CAT.model_copy(update={"job_id": other, "batch_index": batch}))
        assert not any(b"reconcile" in s.value for s in aggregator.due())
        assert run(aggregator, Reconcile(job_id=JOB)) == Outcome()
    assert aggregator.load(JOB).final_status is None
    clock.now += 61  # nothing moves any more: the segment is decoded again
    assert any(b"reconcile" in s.value and JOB.encode() in s.key for s in aggregator.due())
    retry = run(aggregator, Reconcile(job_id=JOB))
    assert [DecodeTask.model_validate_json(s.value).segment_index for s in retry.sends] == [1]


def test_a_stalled_job_logs_what_each_segment_lacks(aggregator, clock, caplog):
    """Which stage lost which batch, so a stall can be traced to its stage."""
    run(aggregator, planned(clock))
    run(aggregator, DECODED.model_copy(update={"batches": {"detail": 3}}))
    run(aggregator, CAT.model_copy(update={"batch_index": 1}))  # batches 0 and 2 never come
    clock.now += 61
    run(aggregator, Reconcile(job_id=JOB))
    assert "missing 0: tag batches [0, 2]; 1: not decoded" in caplog.text


def test_totals_behind_the_segment_records_are_counted_again(aggregator, clock):
    """A crash between writing a segment's record and the job's leaves the job's totals one
    batch short while the segment counts it (its redelivery is then a duplicate): the stall's
    reconciliation counts the totals again from the records and finishes the job."""
    run(aggregator, planned(clock))
    run(aggregator, DECODED.model_copy(update={"batches": {"detail": 2}}))
    run(aggregator, BROKEN)
    before = aggregator.jobs[JOB]
    run(aggregator, CAT)
    aggregator.jobs[JOB] = before  # the crash: the job's record of batch 0 was never written
    assert run(aggregator, CAT) == Outcome()  # counted and stored: a duplicate
    assert run(aggregator, CAT.model_copy(update={"batch_index": 1})).finalised is None
    clock.now += 61
    outcome = run(aggregator, Reconcile(job_id=JOB))
    assert outcome.finalised == JOB
    assert json.loads(aggregator.value_of(outcome.sends[1]))["status"] == "finished"


def test_a_segment_report_the_totals_missed_still_releases_the_next(aggregator, clock):
    """The same crash after a segment's report: the next segment of the window was never
    released. The reconciliation releases it rather than failing the job."""
    job, plan_event = windowed_plan()
    run(aggregator, plan_event)
    before = aggregator.jobs[job]
    first = SegmentDecoded(job_id=job, segment_index=0, batches={})
    assert released(run(aggregator, first)) == [2]
    aggregator.jobs[job] = before  # the crash: neither the count nor the release was kept
    assert released(run(aggregator, first)) == []  # recorded in its segment: a duplicate
    clock.now += 61
    retry = run(aggregator, Reconcile(job_id=job))
    assert sorted(released(retry)) == [1, 2]  # segment 1 again, as before; 2 released
    assert aggregator.load(job).error is None


def test_an_event_writes_as_much_for_a_long_video_as_for_a_short_one(aggregator, clock):
    """The job's record holds totals, not every segment: with 600 segments (ten hours) it is
    as small as with 4, so what a job writes to its changelog grows with its length, not with
    its length squared."""
    sizes = []
    for n in (4, 600):
        job, plan_event = windowed_plan(n, job=f"video_aggregator_size_unit_{n:04d}")
        run(aggregator, plan_event)
        run(aggregator, SegmentDecoded(job_id=job, segment_index=0, batches={"motion": 2}))
        batch = BatchResult(job_id=job, stage="scene", segment_index=0, batch_index=0, payload={})
        run(aggregator, batch)
        sizes.append(len(json.dumps(aggregator.jobs[job])))
        assert len(json.dumps(aggregator.segments[f"{job}|0"])) < 1000
    assert sizes[1] <= sizes[0] + 16, sizes


def test_progress_never_goes_backwards(aggregator, clock):
    run(aggregator, planned(clock))
    large_late_segment = SegmentDecoded(job_id=JOB, segment_index=1, batches={"detail": 3})
    seen = []
    for event in (DECODED, CAT, large_late_segment):
        run(aggregator, event)
        seen.append(aggregator.load(JOB).progress)
    assert seen == sorted(seen) and seen[-1] < 1.0


def test_plan_refuses_bad_image_data_per_item(tmp_path):
    good = base64.b64encode(b"\x89PNG...").decode()
    request = IngestRequest(
        job_id=JOB,
        media_type="image",
        images=[
            ImageSource(external_id="a", data_base64=good),
            ImageSource(external_id="b", data_base64="data:image/png;base64," + good),
            ImageSource(external_id="c", data_base64="%%%"),
        ],
    )
    planned_job, tasks, failed = plan(request, BlobStore(tmp_path), Settings(stages=["tag"]))
    assert planned_job.n_segments == 3 and [t.segment_index for t in tasks] == [0]
    assert [f.segment_index for f in failed] == [1, 2]
    assert "data: URI" in failed[0].error.message and "base64" in failed[1].error.message


def test_after_a_restart_a_job_that_does_not_move_is_reconciled_at_once(aggregator, clock):
    """A crash may lose events whose offsets were committed: a restarted aggregator reconciles
    jobs that have not moved since it started after `restart_grace_s`, not after the stall
    timeout (60 s here)."""
    run(aggregator, planned(clock))
    run(aggregator, DECODED)
    run(aggregator, CAT)  # segment 1's report was lost in the crash
    clock.now += 5
    restarted = Aggregator(
        aggregator.jobs,
        aggregator.segments,
        aggregator.batches,
        aggregator.settings,
        aggregator.blobs,
        clock=clock,
    )
    assert not restarted.due()  # within the grace
    clock.now += restarted.settings.restart_grace_s + 1
    events = [Reconcile.model_validate_json(s.value) for s in restarted.due()]
    assert [(e.job_id, e.after_restart) for e in events] == [(JOB, True)]
    assert not restarted.due()  # once
    retry = run(restarted, events[0])
    assert [DecodeTask.model_validate_json(s.value).segment_index for s in retry.sends] == [1]


def windowed_plan(
    n: int = 4, job: str = "video_aggregator_window_unit_01"
) -> tuple[str, JobPlanned]:
    """A scene-only video of ``n`` one-minute segments whose plan sends the first two."""
    tasks = [
        DecodeTask(job_id=job, media_type="video", blob_key=f"uploads/{job}/video",
                   segment_index=i, start_s=60.0 * i, stages=["scene"], profiles=["motion"])
        for i in range(n)
    ]  # fmt: skip
    return job, JobPlanned(
        job_id=job, media_type="video", stages=["scene"], n_segments=n,
        probe={"duration_seconds": 60.0 * n, "fps": 25.0, "width": 64, "height": 64},
        submitted_at="2026-11-25T00:00:00Z", decode_tasks=tasks, released=2,
    )  # fmt: skip


def released(outcome: Outcome) -> list[int]:
    """The segments whose decode tasks ``outcome`` sends."""
    return [
        DecodeTask.model_validate_json(s.value).segment_index
        for s in outcome.sends
        if s.topic == topics.DECODE_TASKS
    ]


def test_a_long_video_releases_its_segments_a_window_at_a_time(aggregator, clock):
    """The plan sends two of four decode tasks; each segment that ends (decoded, and analysed
    by every stage) releases the next. A long video thus never queues more than its window
    ahead of other jobs: neither at the decoders, nor in the stages' queues, where a decoder
    faster than the stages would otherwise pile up all its batches."""
    job, plan_event = windowed_plan()
    run(aggregator, plan_event)

    first = SegmentDecoded(job_id=job, segment_index=0, batches={"motion": 1})
    assert released(run(aggregator, first)) == []  # its batch is still in the scene queue
    shots = BatchResult(job_id=job, stage="scene", segment_index=0, batch_index=0, payload={})
    assert released(run(aggregator, shots)) == [2]
    assert released(run(aggregator, shots)) == []  # a redelivery releases nothing
    assert released(run(aggregator, first)) == []
    assert released(run(aggregator, SegmentDecoded(job_id=job, segment_index=1, batches={}))) == [3]
    state = aggregator.load(job)
    assert (state.released, state.completed) == (4, 2)
    assert assembly.incomplete_segments(state, aggregator.segment_records(state)) == [2, 3]


def test_a_job_recorded_before_its_window_was_kept_releases_with_the_setting(aggregator, clock):
    """A job planned by the previous version has no ``window`` in its record: it releases
    with FRAMEWISE_DECODE_WINDOW (4) rather than never again."""
    job, plan_event = windowed_plan()
    run(aggregator, plan_event)
    del aggregator.jobs[job]["window"]
    first = SegmentDecoded(job_id=job, segment_index=0, batches={})
    assert released(run(aggregator, first)) == [2, 3]
