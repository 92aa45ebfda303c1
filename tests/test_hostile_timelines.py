"""A claimed timeline costs nothing to fake: a plan follows the frames a video really holds, a
job keeps its Max-Processing-Time, and progress never goes backwards."""

from __future__ import annotations

import math
import threading
import time

import av
import numpy as np
import pytest

from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.media import TimelineScan, scan_timeline
from framewise.synthetic import write_cut_video, write_timeline_video
from schemas.messages import IngestRequest
from stages.decode.planner import plan, segment_length, segment_starts

DAY_MS = 86_400_000


def plan_of(path, tmp_path, **settings):
    blobs = BlobStore(tmp_path / "data")
    blobs.put_bytes("uploads/video_hostile_timeline_01/video", path.read_bytes())
    request = IngestRequest(
        job_id="video_hostile_timeline_01",
        media_type="video",
        video_blob_key="uploads/video_hostile_timeline_01/video",
    )
    planned, tasks, _ = plan(request, blobs, Settings(stages=["scene"], **settings))
    return planned, tasks


def test_two_frames_a_day_apart_make_one_segment(tmp_path):
    """Not 1,441: a segment of its own for the second frame would decode the first one again
    to reach it, so both are one segment's."""
    path = tmp_path / "gap.mp4"
    write_timeline_video(path, [0, DAY_MS])
    assert path.stat().st_size < 4096
    scan = scan_timeline(path, 60.0)
    assert (scan.slots, scan.packets) == ([0, 1440], 2)
    planned, tasks = plan_of(path, tmp_path, segment_seconds=60.0)
    assert planned.n_segments == 1
    assert tasks[0].start_s == 0.0 and tasks[0].end_s is None


def test_a_continuous_video_is_cut_into_equal_segments_at_key_frames(tmp_path):
    """Four segments of at most 20 s for 50 s (a multiple of the two a worker decodes at
    once), each starting just after a key frame (by the context and a frame), so that no
    decoder decodes a group of pictures for nothing."""
    path = tmp_path / "cuts.mp4"
    write_cut_video(path, seconds=50, shot_seconds=10)
    _, tasks = plan_of(path, tmp_path, segment_seconds=20.0)
    keyframes = scan_timeline(path, 50 / 4).keyframes
    lead = 0.6 + 1 / 30 + 0.01
    assert len(tasks) == 4 and tasks[0].start_s == 0.0 and tasks[-1].end_s is None
    for k, task in enumerate(tasks[1:], start=1):
        assert task.start_s == tasks[k - 1].end_s
        assert abs(task.start_s - k * 50 / 4) < 50 / 8
        assert min(abs(task.start_s - lead - key) for key in keyframes) < 1e-6


def scan_of(keyframes: list[float], seconds: float, length: float, fps: float = 30.0):
    """The scan of a ``seconds`` long video at a constant ``fps``, key frames at ``keyframes``."""
    slots = list(range(math.ceil(seconds / length)))
    return TimelineScan(
        slots=slots,
        packets=round(seconds * fps),
        keyframes=keyframes,
        last_in_slot={s: min(seconds, (s + 1) * length) - 1 / fps for s in slots},
        packets_before_keyframe=[round(k * fps) for k in keyframes],
        packets_before_slot={s: round(s * length * fps) for s in slots},
    )


def test_a_segment_starts_where_it_costs_fewest_frames():
    lead = 0.65
    # a key frame 0.35 s before the middle: just after it (10 frames moved, nothing decoded)
    assert segment_starts(scan_of([0.0, 11.0, 16.0], 24.0, 12.0), 12.0, lead) == [
        0.0,
        pytest.approx(11.65),
    ]
    # testvideo.mp4's key frames: 16 s moves 140 frames, a lead-in from 6 s costs about 0.4x
    # its 180 frames; the segment starts later by half of that, so both segments bear it
    testvideo = scan_of([0.0, 1.0, 6.0, 16.0], 24.0, 12.0)
    starts = segment_starts(testvideo, 12.0, lead)
    assert starts == [0.0, pytest.approx(12.0 + 0.4 * 180 / 2 / 30, abs=0.05)]
    # segments decoded in turns (a long video): frames moved cost nothing, a lead-in does
    assert segment_starts(testvideo, 12.0, lead, balance=False) == [0.0, pytest.approx(16.65)]


def test_a_video_with_one_key_frame_is_one_segment():
    """Each later segment would decode the video from its start to reach its own: 600 of
    them, a ten-hour decode for one hour of video. A lead-in of more than half a segment's
    frames is never paid."""
    assert segment_starts(scan_of([0.0], 3600.0, 6.0), 6.0, 0.65) == [0.0]
    # key frames every 10 s, slots of 6 s: a start just after a key frame, or 3 s after at most
    keyframes = [10.0 * k for k in range(360)]
    starts = segment_starts(scan_of(keyframes, 3600.0, 6.0), 6.0, 0.65)
    lead_ins = [s - max(k for k in keyframes if k <= s) for s in starts[1:]]
    assert len(starts) == 360 and min(lead_ins) >= 0.65 - 1e-9 and max(lead_ins) <= 3.65


def write_gop_video(path, keyint: int, seconds: int = 40) -> None:
    """A 64x48 H.264 video of drifting texture with a key frame every ``keyint`` frames."""
    texture = np.random.default_rng(3).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(
            "libx264", rate=30, options={"x264-params": f"keyint={keyint}:scenecut=0"}
        )
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(seconds * 30):
            frame = av.VideoFrame.from_ndarray(np.roll(texture, i, axis=1), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_a_real_video_with_one_key_frame_is_planned_as_one_segment(tmp_path):
    """The same 40 s with a key frame every second make four segments of 10 s."""
    one_key = tmp_path / "one_key.mp4"
    write_gop_video(one_key, keyint=100_000)
    assert scan_timeline(one_key, 10.0).keyframes == [0.0]
    assert plan_of(one_key, tmp_path, segment_seconds=10.0)[0].n_segments == 1
    every_second = tmp_path / "every_second.mp4"
    write_gop_video(every_second, keyint=30)
    assert plan_of(every_second, tmp_path, segment_seconds=10.0)[0].n_segments == 4


def test_placing_segments_looks_only_at_the_key_frames_around_each_slot():
    """200,000 slots with a key frame each: each slot looks at the two key frames around its
    start (a scan of every key frame for every slot would take 4e10 steps)."""
    n = 200_000
    scan = scan_of([10.0 * i + 1.0 for i in range(n)], 10.0 * n, 10.0)
    starts = segment_starts(scan, 10.0, 0.5)
    assert len(starts) == n and starts[1] == 11.5 and starts[-1] == 10.0 * (n - 1) + 1.5


@pytest.mark.parametrize(
    ("seconds", "lengths"),
    [(24.0, [12.0, 12.0]), (6.0, [4.0, 2.0]), (3.0, [3.0]), (130.0, [32.5] * 4)],
)
def test_a_short_video_is_split_for_every_decoder_of_a_worker(seconds, lengths):
    """Two segments decoded at once (FRAMEWISE_DECODE_CONCURRENCY=2) even for 24 s, but none
    under 4 s; a long video in equal segments of at most FRAMEWISE_SEGMENT_SECONDS, as many as
    a multiple of two, so that neither decoder idles while the other decodes the last one."""
    length = segment_length(seconds, Settings())
    cuts = [min(seconds, length * k) for k in range(1, math.ceil(seconds / length - 1e-9) + 1)]
    assert np.diff([0.0, *cuts]) == pytest.approx(lengths)
    one_at_a_time = Settings(decode_concurrency=1)
    assert segment_length(seconds, one_at_a_time) >= min(seconds, lengths[0])


def test_a_faked_timeline_keeps_its_deadline_and_starves_nobody(pipeline, tmp_path, test_video):
    """The 1.6 kB file of two frames a day apart, with a 10 s limit, next to another job: both
    end promptly, and the hostile job's progress never goes backwards."""
    from tests.test_pipeline import submit_video

    path = tmp_path / "gap.mp4"
    write_timeline_video(path, [0, DAY_MS])
    started = time.monotonic()
    hostile = submit_video(pipeline, path, headers={"Max-Processing-Time": "10"})
    seen: list[float] = []

    def watch() -> None:
        with pipeline.client() as client:
            while time.monotonic() - started < 30:
                body = client.get(hostile).json()
                seen.append(body.get("progress") or 0.0)
                if body["status"] in ("finished", "failed"):
                    return
                time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    other = submit_video(pipeline, test_video)
    body = pipeline.wait_job(hostile, timeout=30)
    elapsed = time.monotonic() - started
    watcher.join()
    assert elapsed < 20, f"the hostile job took {elapsed:.1f} s"
    assert body["status"] == "finished" or body["error"]["code"] == "processing_timeout"
    if body["status"] == "finished":
        assert body["result"]["metadata"]["duration_seconds"] >= 86_400
    assert seen == sorted(seen), seen
    assert pipeline.wait_job(other, timeout=120)["status"] == "finished"


def truncated_copy(source, target):
    """``source`` remuxed with its index first (faststart) and cut in half, as an interrupted
    upload of such a file is: the header still declares every frame."""
    import av

    whole = target.with_suffix(".whole.mp4")
    with (
        av.open(str(source)) as src,
        av.open(str(whole), "w", options={"movflags": "faststart"}) as out,
    ):
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = whole.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def test_a_truncated_video_is_refused_by_the_plan(tmp_path, test_video):

    from framewise.media import MediaError

    half = truncated_copy(test_video, tmp_path / "half.mp4")
    with pytest.raises(MediaError) as refused:
        plan_of(half, tmp_path)
    assert refused.value.code == "corrupt_media" and "of the 720 frames" in refused.value.message
    whole = truncated_copy(test_video, tmp_path / "x.mp4").with_suffix(".whole.mp4")
    assert plan_of(whole, tmp_path)[0].n_segments == 2  # the same file whole is fine


def test_a_truncated_video_fails_with_corrupt_media(pipeline, tmp_path, test_video):
    from tests.test_pipeline import submit_video

    half = truncated_copy(test_video, tmp_path / "half.mp4")
    body = pipeline.wait_job(submit_video(pipeline, half), timeout=60)
    assert body["status"] == "failed" and body["error"]["code"] == "corrupt_media"
    assert "truncated" in body["error"]["message"]


def write_sideways_video(path):
    """ "HELLO WORLD" with a red corner at the top left, stored turned 90° clockwise with a
    display matrix that turns it back, as a phone held upright records."""
    import av
    import cv2
    import numpy as np

    shown = np.full((240, 640, 3), 255, np.uint8)
    cv2.putText(shown, "HELLO WORLD", (20, 150), cv2.FONT_HERSHEY_SIMPLEX, 2.5, (0, 0, 0), 6)
    shown[:40, :40] = (255, 0, 0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 240, 640, "yuv420p"
        stream.set_display_rotation(90)  # shown = the stored frame turned 90° counterclockwise
        stored = np.ascontiguousarray(np.rot90(shown, -1))
        for _ in range(20):
            for packet in stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_a_video_stored_sideways_is_analysed_upright(tmp_path):
    """A phone video stored sideways with a 90° display matrix: frames, size and text come
    out as displayed (the red corner top left, "HELLO WORLD" read)."""
    from framewise.config import Settings
    from framewise.media import decode_video_segment, probe_video
    from stages.local import run_video_stages
    from stages.profiles import profiles

    path = write_sideways_video(tmp_path / "sideways.mp4")
    probe = probe_video(path, 1 << 30)
    assert (probe.width, probe.height) == (640, 240)
    detail = profiles(Settings())["detail"]
    batch = next(decode_video_segment(path, [detail], 0.0, None, 1 << 30))
    frame = batch.frames[0]
    assert frame.shape[:2] == (240, 640)
    assert frame[:20, :20, 0].mean() > 200 and frame[:20, :20, 1].mean() < 60  # red, top left
    result = run_video_stages(path, Settings(stages=["ocr"]))
    assert [r.full_text for r in result.ocr_results] == ["HELLO WORLD"]


def write_vfr_video(path):
    """10 fps for 2 s, a hard cut, then 30 fps for 2 s."""
    import numpy as np

    rng = np.random.default_rng(3)
    shots = [rng.integers(0, 255, (15, 20, 3)).repeat(8, 0).repeat(8, 1) for _ in range(2)]
    times = [i * 100 for i in range(20)] + [2000 + round(i * 1000 / 30) for i in range(60)]
    write_timeline_video(
        path, times, lambda i, ms: np.roll(shots[ms >= 2000], i, axis=1).astype(np.uint8)
    )
    return path


def check_vfr_result(result: dict) -> None:
    """The cut at 2.0 s in the shots and, as the contract reads it, in the activity; no shot
    past the duration."""
    import numpy as np

    assert [round(s["start_seconds"], 3) for s in result["raw_scenes"]] == [0.0, 2.0]
    interval = result["metadata"]["frame_activity_interval_seconds"]
    diffs = result["frame_activity_diffs"]
    assert abs((int(np.argmax(diffs)) + 1) * interval - 2.0) <= interval
    assert len(diffs) * interval == pytest.approx(4.0, abs=2 * interval)
    assert result["raw_scenes"][-1]["end_seconds"] <= result["metadata"]["duration_seconds"]


def test_variable_frame_rate_timing_is_exact(tmp_path):
    from framewise.config import Settings
    from stages.local import run_video_stages

    result = run_video_stages(write_vfr_video(tmp_path / "vfr.mp4"), Settings(stages=["scene"]))
    check_vfr_result(result.model_dump())


def test_rotation_and_variable_frame_rate_through_the_stack(pipeline, tmp_path):
    """The same sideways and VFR videos submitted to the running service."""
    from tests.test_pipeline import submit_video

    sideways = pipeline.wait_job(
        submit_video(pipeline, write_sideways_video(tmp_path / "s.mp4")), timeout=120
    )
    meta = sideways["result"]["metadata"]
    assert (meta["width"], meta["height"]) == (640, 240)
    assert [r["full_text"] for r in sideways["result"]["ocr_results"]] == ["HELLO WORLD"]
    vfr = pipeline.wait_job(submit_video(pipeline, write_vfr_video(tmp_path / "v.mp4")), 120)
    check_vfr_result(vfr["result"])
