"""Bounded load on a running framewise (loopback only): concurrent clients upload image
batches and poll them, while the script reports throughput, API latency (p50/p99 of every
request) and the queue depth from /metrics. It stops by itself.

    python bench/load.py [--url http://127.0.0.1:8000] [--clients 8] [--jobs 40] [--image F]

429 answers (backpressure) are counted and retried after their Retry-After.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ.get("FRAMEWISE_TEST_MEDIA", ROOT.parent / "shared" / "media"))


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.refused = 0
        self.finished = 0
        self.depth: list[float] = []


async def timed(stats: Stats, call):
    start = time.perf_counter()
    response = await call
    stats.latencies.append(time.perf_counter() - start)
    return response


async def one_client(
    client: httpx.AsyncClient, body: dict, jobs: asyncio.Queue, stats: Stats, deadline: float
) -> None:
    while not jobs.empty() and time.monotonic() < deadline:
        await jobs.get()
        while time.monotonic() < deadline:
            response = await timed(stats, client.post("/v1/images", json=body))
            if response.status_code != 429:
                break
            stats.refused += 1
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
        if response.status_code != 202:
            continue
        location = response.headers["Location"]
        while time.monotonic() < deadline:
            status = (await timed(stats, client.get(location))).json()["status"]
            if status in ("finished", "failed"):
                stats.finished += 1
                break
            await asyncio.sleep(0.2)


async def watch_depth(client: httpx.AsyncClient, stats: Stats, stop: asyncio.Event) -> None:
    while not stop.is_set():
        text = (await client.get("/metrics")).text
        for line in text.splitlines():
            if line.startswith("framewise_jobs_active "):
                stats.depth.append(float(line.split()[-1]))
        await asyncio.sleep(0.5)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=300, help="hard stop")
    parser.add_argument("--image", default=str(MEDIA / "images" / "tags" / "kitten_224.png"))
    args = parser.parse_args()
    if not args.url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise SystemExit("load is only sent to loopback addresses")
    data = base64.b64encode(Path(args.image).read_bytes()).decode()
    body = {"images": [{"external_id": "load", "data_base64": data}]}
    jobs: asyncio.Queue = asyncio.Queue()
    for n in range(args.jobs):
        jobs.put_nowait(n)
    stats, stop = Stats(), asyncio.Event()
    deadline = time.monotonic() + args.seconds
    async with httpx.AsyncClient(base_url=args.url, timeout=30) as client:
        watcher = asyncio.create_task(watch_depth(client, stats, stop))
        start = time.perf_counter()
        await asyncio.gather(
            *(one_client(client, body, jobs, stats, deadline) for _ in range(args.clients))
        )
        wall = time.perf_counter() - start
        stop.set()
        await watcher
    lat = sorted(stats.latencies)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else 0.0
    print(
        f"jobs finished {stats.finished}/{args.jobs} in {wall:.1f} s "
        f"({stats.finished / wall:.2f} jobs/s) with {args.clients} clients"
    )
    print(
        f"API requests {len(lat)}: p50 {statistics.median(lat) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms; 429 refusals {stats.refused}"
    )
    print(
        f"queue depth: max {max(stats.depth, default=0):.0f}, "
        f"mean {statistics.fmean(stats.depth) if stats.depth else 0:.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
