"""Prometheus metrics. The API serves them at ``/metrics``; a worker serves them on
``FRAMEWISE_METRICS_PORT`` when set (see docs/operations.md for what to alert on)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

JOBS_ACCEPTED = Counter("framewise_jobs_accepted_total", "Jobs accepted by the API", ["media_type"])
JOBS_REFUSED = Counter("framewise_jobs_refused_total", "Submissions refused by backpressure")
JOBS_ACTIVE = Gauge("framewise_jobs_active", "Jobs queued or processing (the queue depth)")
JOBS_FINISHED = Counter(
    "framewise_jobs_finished_total", "Jobs that reached a terminal state", ["media_type", "status"]
)
JOB_SECONDS = Histogram(
    "framewise_job_seconds",
    "Submission to terminal state",
    ["media_type"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
WEBHOOK_FAILURES = Counter(
    "framewise_webhook_failures_total", "Webhooks given up on after every attempt"
)
STAGE_BATCHES = Counter(
    "framewise_stage_batches_total", "Frame batches analysed", ["stage", "outcome"]
)
STAGE_FRAMES = Counter("framewise_stage_frames_total", "Frames analysed", ["stage"])
STAGE_SECONDS = Histogram("framewise_stage_batch_seconds", "Analysis time of one batch", ["stage"])
DEAD_LETTERS = Counter("framewise_dead_letters_total", "Messages dead-lettered", ["topic"])


def serve(port: int) -> None:
    if port:
        start_http_server(port)
