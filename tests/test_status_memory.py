"""The API's memory stays bounded however many finished jobs the retention period holds, and
the aggregator can hand its megabyte buffers back when they are freed."""

from __future__ import annotations

import asyncio
import json
import platform
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from framewise.config import Settings
from ingest_api.job_bodies import MEMORY_BYTES
from ingest_api.problems import ProblemError
from ingest_api.status_view import StatusView

TEMPLATE = json.dumps(
    {
        "job_id": "JOB",
        "status": "finished",
        "created_at": "2026-11-25T10:00:00+00:00",
        "updated_at": "2026-11-25T10:01:00+00:00",
        "result": {"frame_activity_diffs": [0.123456] * 20_000},  # 200 KB, a 10-minute video
    }
).encode()


def body(job_id: str) -> bytes:
    return TEMPLATE.replace(b'"JOB"', json.dumps(job_id).encode())


def test_hundreds_of_large_finished_jobs_cost_the_memory_of_a_few(monkeypatch):
    view = StatusView(Settings())
    monkeypatch.setattr(view, "caught_up", lambda timeout=2.0: asyncio.sleep(0))
    jobs = [f"video_{i:032x}" for i in range(400)]
    tracemalloc.start()
    for i, job_id in enumerate(jobs):
        view.set_owner(job_id, "key_a" if i % 2 else "key_b")
        view.apply(job_id, body(job_id))  # 80 MB of bodies in all
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert held < MEMORY_BYTES + 16 * 2**20, f"{held / 2**20:.0f} MiB held"
    assert len(view.jobs) == 400 and not view.active

    async def served():
        for i in (0, 1, 200, 399):
            owner = "key_a" if i % 2 else "key_b"
            assert await view.find(jobs[i], "video_", owner) == body(jobs[i])
        with pytest.raises(ProblemError):
            await view.find(jobs[0], "video_", "key_a")  # key_b's job: not found for key_a

    asyncio.run(served())
    view.jobs.close()


def test_the_aggregator_can_give_megabyte_buffers_back_at_once():
    """glibc takes the fixed threshold (in a child process: it changes the allocator)."""
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    code = "from framewise.memory import map_large_buffers; assert map_large_buffers(1 << 20)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_a_megabyte_body_is_a_file_of_its_own_and_is_not_held():
    """A long video's final body is megabytes: SQLite would copy it and page it through its
    cache, and the memory cache would hold it while it is read once or twice."""
    view = StatusView(Settings())
    job_id = "video_" + "7" * 32
    large = body(job_id)[:-2] + b', "pad": "' + b"p" * 3_000_000 + b'"}}'
    tracemalloc.start()
    view.apply(job_id, large)
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert held < 100_000, f"{held} bytes held"
    assert peak < 1_000_000, f"{peak} bytes at the peak"  # no copy of the body on the way
    files = [p for p in view.jobs._dir.iterdir() if p.suffix != ".sqlite"]
    assert len(files) == 1 and files[0].read_bytes() == large
    found = asyncio.run(view.find(job_id, "video_", None))  # its file, for the API to stream
    assert len(view.jobs) == 1 and found == files[0]
    with found.open("rb") as reader:  # a newer body replaces the file; a reader keeps its own
        view.apply(job_id, large.replace(b"ppp", b"qqq", 1))
        assert reader.read() == large

    view.apply(job_id, body(job_id))  # a smaller body of the same job replaces it
    assert [p for p in view.jobs._dir.iterdir() if p.suffix != ".sqlite"] == []
    assert asyncio.run(view.find(job_id, "video_", None)) == body(job_id)
    view.apply(job_id, large)
    view.forget([job_id])
    assert [p for p in view.jobs._dir.iterdir() if p.suffix != ".sqlite"] == []
    assert len(view.jobs) == 0
    view.jobs.close()
