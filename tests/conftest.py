"""Fixtures: real media from ``FRAMEWISE_TEST_MEDIA`` (default ``../shared/media``), and a real
pipeline: the embedded Kafka-protocol broker, every worker and the API as separate processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

from framewise.broker import free_port, start_embedded_broker, wait_for_port
from framewise.synthetic import write_cut_video, write_image_video
from ingest_api.client import ApiProblem, Client

ROOT = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ.get("FRAMEWISE_TEST_MEDIA", ROOT.parent / "shared" / "media"))


@pytest.fixture(scope="session")
def media() -> Path:
    if not (MEDIA / "video" / "testvideo.mp4").is_file():
        pytest.skip(f"test media not found at {MEDIA} (set FRAMEWISE_TEST_MEDIA)")
    return MEDIA


@pytest.fixture(scope="session")
def test_video(media: Path) -> Path:
    return media / "video" / "testvideo.mp4"


MODELS = Path(os.environ.get("FRAMEWISE_TEST_MODELS", ROOT.parent / "shared" / "models"))


@pytest.fixture(scope="session")
def models() -> Path:
    if not (MODELS / "classify" / "squeezenet1.1_fp16.onnx").is_file():
        pytest.skip(f"test models not found at {MODELS} (set FRAMEWISE_TEST_MODELS)")
    return MODELS


@pytest.fixture(scope="session")
def face_models(tmp_path_factory) -> Path:
    """A models directory holding an insightface-layout pack: the real SCRFD detector plus
    recognition/genderage stand-ins (``FRAMEWISE_FACE_PACK=insightface``)."""
    from tests.face_standins import make_pack

    if not (MODELS / "face" / "det_500m.onnx").is_file():
        pytest.skip(f"face detector not found at {MODELS}/face (set FRAMEWISE_TEST_MODELS)")
    directory = tmp_path_factory.mktemp("models")
    make_pack(directory / "face", MODELS / "face" / "det_500m.onnx")
    return directory


@pytest.fixture(scope="module")
def face_settings(tmp_path_factory):
    """The scene and face stages with an empty FRAMEWISE_MODELS_DIR: the default face pack is
    what `make install` put on disk."""
    from framewise.config import Settings

    return Settings(
        models_dir=tmp_path_factory.mktemp("no-models"),
        data_dir=tmp_path_factory.mktemp("data"),
        stages=["scene", "face"],
    )


@pytest.fixture(scope="session")
def faces_video(media, tmp_path_factory) -> Path:
    """group photo 3 s | kitten 3 s | the group photo again, cropped and scaled, 3 s."""
    import cv2

    images = media / "images"
    work = tmp_path_factory.mktemp("faces")
    group = cv2.imread(str(images / "faces" / "t1.jpg"))
    h, w = group.shape[:2]
    moved = work / "t1_moved.jpg"
    # Every face stays whole (the leftmost one starts 65 px from the edge): a half face is
    # another test.
    cv2.imwrite(str(moved), cv2.resize(group[int(0.05 * h) :, int(0.04 * w) :], (w, h)))
    path = work / "faces.mp4"
    write_image_video(
        path,
        [images / "faces" / "t1.jpg", images / "tags" / "kitten_224.png", moved],
        3.0,
        size=(1280, 886),
    )
    return path


@pytest.fixture(scope="session")
def tom_video(media, tmp_path_factory) -> Path:
    """The group photo with Tom Hanks's face pasted at its top left (224 px), 3 s | Tom alone
    on grey, smaller (160 px) and elsewhere, 3 s."""
    import cv2

    faces = media / "images" / "faces"
    work = tmp_path_factory.mktemp("tom")
    tom = cv2.imread(str(faces / "Tom_Hanks_54745.png"))
    group = cv2.imread(str(faces / "t1.jpg"))
    group[20:244, 20:244] = cv2.resize(tom, (224, 224))
    alone = np.full_like(group, 128)
    alone[500:660, 900:1060] = cv2.resize(tom, (160, 160))
    cv2.imwrite(str(work / "group_and_tom.png"), group)
    cv2.imwrite(str(work / "tom_alone.png"), alone)
    path = work / "tom.mp4"
    size = (group.shape[1], group.shape[0])
    write_image_video(path, [work / "group_and_tom.png", work / "tom_alone.png"], 3.0, size=size)
    return path


@pytest.fixture(scope="session")
def animals_video(media, tmp_path_factory) -> Path:
    """cat 3 s | fish 3 s | group photo 3 s | cat 3 s."""
    images = media / "images"
    path = tmp_path_factory.mktemp("media") / "animals.mp4"
    write_image_video(
        path,
        [
            images / "tags" / "kitten_224.png",
            images / "tags" / "fish.png",
            images / "faces" / "t1.jpg",
            images / "tags" / "kitten_224.png",
        ],
        3.0,
    )
    return path


@pytest.fixture(scope="session")
def long_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("media") / "cuts_120s.mp4"
    write_cut_video(path, seconds=120, shot_seconds=10)
    return path


def upload_video(base_url: str, path: Path) -> str:
    """Upload a video to a running API with the client; the job's status path."""
    with Client(base_url) as client:
        return f"/v1/videos/{client.submit_video(path)}"


def wait_for_job(
    base_url: str, location: str, timeout: float = 90.0, until=("finished", "failed")
) -> dict:
    """Poll a job with the client until its status is in ``until`` (an outage of the API in
    between is waited out); its body."""
    job_id = location.rsplit("/", 1)[-1]
    deadline = time.monotonic() + timeout
    with Client(base_url, timeout=30) as client:
        while time.monotonic() < deadline:
            try:
                job = client.get(job_id)
            except (ApiProblem, httpx.HTTPError):
                job = None
            if job is not None and job.status.value in until:
                return job.model_dump(mode="json", exclude_none=True)
            time.sleep(0.2)
    raise AssertionError(f"{location} did not reach {until} in {timeout}s")


@dataclass
class Pipeline:
    """A running framewise: broker, workers and API, each a real process."""

    env: dict[str, str]
    url: str
    bootstrap: str
    data_dir: Path
    log_dir: Path
    stages: list[str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, role: str, name: str | None = None, **env: str) -> None:
        """Start a worker or the API; ``name`` and extra ``FRAMEWISE_*`` values make a second
        instance with other settings (a second API replica, say)."""
        command = [
            sys.executable,
            "-m",
            "launcher.cli",
            *(["api"] if role == "api" else ["worker", role]),
        ]
        name = name or role
        log = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            command, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )

    def kill(self, role: str) -> None:
        proc = self.processes.pop(role)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.processes.values():
            proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def wait_job(self, location: str, timeout: float = 90.0, until=("finished", "failed")) -> dict:
        try:
            return wait_for_job(self.url, location, timeout, until)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; logs in {self.log_dir}") from None

    def logs(self, role: str) -> str:
        return (self.log_dir / f"{role}.log").read_text(errors="replace")


CORE_ROLES = ("decode", "aggregator", "webhook")


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Iterator[Pipeline]:
    base = tmp_path_factory.mktemp("pipeline")
    port, api_port = free_port(), free_port()
    broker = start_embedded_broker(port, str(base / "broker.log"))
    env = dict(os.environ)
    env.update(
        FRAMEWISE_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}",
        FRAMEWISE_CHANGELOG_COMPACTION="false",  # Tansu: see docs/operations.md
        FRAMEWISE_FAST_GROUP_TIMEOUTS="true",
        FRAMEWISE_PARTITIONS="4",
        FRAMEWISE_DATA_DIR=str(base / "data"),
        FRAMEWISE_API_PORT=str(api_port),
        FRAMEWISE_MAX_UPLOAD_BYTES=str(8 * 1024 * 1024),
        FRAMEWISE_MAX_IMAGE_BATCH_BYTES=str(4 * 1024 * 1024),
        FRAMEWISE_SEGMENT_SECONDS="20",
        FRAMEWISE_WEBHOOK_ALLOW_PRIVATE="true",
        FRAMEWISE_WEBHOOK_BACKOFF_S="0.2",
        FRAMEWISE_WEBHOOK_MAX_ATTEMPTS="3",
        FRAMEWISE_DEADLINE_CHECK_INTERVAL_S="0.2",
        FRAMEWISE_MAX_INGEST_MESSAGE_BYTES=str(1024 * 1024),
        FRAMEWISE_STALL_TIMEOUT_S="12",
        FRAMEWISE_LOG_LEVEL="info",
    )
    # Every stage with the models of the default install; FRAMEWISE_MODELS_DIR holds nothing.
    stages = ["scene", "tag", "ocr", "face"]
    (base / "models").mkdir()
    env.update(FRAMEWISE_MODELS_DIR=str(base / "models"), FRAMEWISE_STAGES=json.dumps(stages))
    running = Pipeline(
        env=env,
        url=f"http://127.0.0.1:{api_port}",
        bootstrap=env["FRAMEWISE_KAFKA_BOOTSTRAP"],
        data_dir=base / "data",
        log_dir=base,
        stages=stages,
    )
    subprocess.run([sys.executable, "-m", "launcher.cli", "topics"], env=env, check=True, cwd=ROOT)
    for role in (*CORE_ROLES, *stages, "api"):
        running.start(role)
    try:
        wait_for_port("127.0.0.1", api_port, timeout=60)
        yield running
    finally:
        running.stop_all()
        broker.terminate()
        broker.wait(timeout=10)


async def read_topic(bootstrap: str, topic: str, key: bytes | None, timeout: float = 5.0):
    """Every message of ``topic`` (optionally with ``key``) from the beginning."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found = []
    try:
        end = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < end:
            batch = await consumer.getmany(timeout_ms=300)
            for messages in batch.values():
                found += [m for m in messages if key is None or m.key == key]
    finally:
        await consumer.stop()
    return found


async def record_codecs(bootstrap: str, topic: str) -> set[int]:
    """The compression codec of every record batch on ``topic`` as the broker keeps it
    (0: none, 1: gzip), read with a fetch of its own: consumers decompress silently."""
    from aiokafka import TopicPartition
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.fetch import FetchRequest
    from aiokafka.record.memory_records import MemoryRecords

    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    codecs = set()
    try:
        client.add_topic(topic)
        await client.force_metadata_update()
        by_leader: dict[int, list[tuple[int, int, int]]] = {}
        for partition in client.cluster.partitions_for_topic(topic) or ():
            leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
            by_leader.setdefault(leader, []).append((partition, 0, 64 << 20))
        for leader, partitions in by_leader.items():
            fetch = FetchRequest(500, 1, 64 << 20, 0, [(topic, partitions)])
            for _, fetched in (await client.send(leader, fetch)).topics:
                for partition in fetched:
                    records = MemoryRecords(partition[-1])  # the last field: the records
                    while (batch := records.next_batch()) is not None:
                        codecs.add(batch.compression_type)
    finally:
        await client.close()
    return codecs
