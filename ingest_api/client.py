"""A typed Python client of the Framewise REST API, sync (:class:`Client`) and async
(:class:`AsyncClient`), on httpx.

    from ingest_api.client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as fw:
        job = fw.wait(fw.submit_video("clip.mp4"))
        print([s.start_seconds for s in job.result.raw_scenes])

Results come back as the schema models (:class:`~schemas.api.VideoJob`,
:class:`~schemas.api.ImageBatchJob`); a refused request raises :class:`ApiProblem`, which
carries the server's RFC 9457 problem.
"""

from __future__ import annotations

import asyncio
import base64
import mimetypes
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from schemas.api import ImageBatchJob, JobAccepted, JobStatus, Problem, VideoJob

Job = VideoJob | ImageBatchJob
ImageSource = Path | str | tuple[str, bytes]  # a file, or (external_id, encoded image bytes)
VideoSource = Path | str | bytes | BinaryIO
CHUNK = 1 << 20


class ApiProblem(Exception):
    """The API refused a request; ``problem`` is its RFC 9457 body."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(f"{problem.status} {problem.title}: {problem.detail or ''}".strip())
        self.problem = problem
        self.status = problem.status


class JobTimeout(TimeoutError):
    """:meth:`Client.wait` gave up; ``job`` is the last status seen."""

    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(f"{job.job_id} still {job.status.value} after {timeout} s")
        self.job = job


@dataclass
class Backoff:
    """Polling intervals: ``first``, growing by ``factor`` up to ``longest`` seconds."""

    first: float = 0.2
    factor: float = 1.5
    longest: float = 5.0

    def intervals(self) -> Iterator[float]:
        interval = self.first
        while True:
            yield interval
            interval = min(self.longest, interval * self.factor)


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _limit(max_processing_time: int | None) -> dict[str, str]:
    return {} if max_processing_time is None else {"Max-Processing-Time": str(max_processing_time)}


def _video_request(
    source: VideoSource,
    webhook_url: str | None,
    webhook_secret: str | None,
    max_processing_time: int | None,
    content_type: str | None,
) -> dict[str, Any]:
    """``POST /v1/videos`` as httpx keyword arguments; a file is streamed in chunks."""
    if isinstance(source, str | Path):
        path = Path(source)
        kind = mimetypes.guess_type(path.name)[0] or ""
        guessed = kind if kind.startswith("video/") else "application/octet-stream"
        stream = path.open("rb")

        def chunks() -> Iterator[bytes]:
            with stream:
                yield from iter(lambda: stream.read(CHUNK), b"")

        content: Any = chunks()
    elif isinstance(source, bytes):
        content, guessed = source, "application/octet-stream"
    else:
        content, guessed = iter(lambda: source.read(CHUNK), b""), "application/octet-stream"
    params = {"webhook.url": webhook_url} if webhook_url else {}
    if webhook_secret:
        params["webhook.secret"] = webhook_secret
    headers = {"Content-Type": content_type or guessed, **_limit(max_processing_time)}
    return {"url": "/v1/videos", "content": content, "params": params, "headers": headers}


def _images_request(
    images: Sequence[ImageSource], webhook_url: str | None, max_processing_time: int | None
) -> dict[str, Any]:
    """``POST /v1/images`` as httpx keyword arguments."""
    items = []
    for image in images:
        if isinstance(image, tuple):
            external_id, data = image
        else:
            external_id, data = Path(image).name, Path(image).read_bytes()
        items.append({"external_id": external_id, "data_base64": base64.b64encode(data).decode()})
    body: dict[str, Any] = {"images": items}
    if webhook_url:
        body["webhook"] = {"url": webhook_url}
    return {"url": "/v1/images", "json": body, "headers": _limit(max_processing_time)}


def _checked(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    try:
        problem = Problem.model_validate(response.json())
    except ValueError:
        problem = Problem(title=response.reason_phrase, status=response.status_code,
                          detail=response.text[:500])  # fmt: skip
    raise ApiProblem(problem)


def _accepted(response: httpx.Response) -> str:
    return JobAccepted.model_validate_json(_checked(response).content).job_id


def _job(response: httpx.Response, job_id: str) -> Job:
    model = VideoJob if job_id.startswith("video_") else ImageBatchJob
    return model.model_validate_json(_checked(response).content)


def _path(job_id: str) -> str:
    return f"/v1/videos/{job_id}" if job_id.startswith("video_") else f"/v1/images/{job_id}"


async def _read_in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A blocking chunk iterator read off the event loop."""
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        yield chunk


class _Polling:
    """The waiting rule both clients share: after each status, the next pause, or ``None``
    when the job has ended; :class:`JobTimeout` past the deadline."""

    def __init__(
        self,
        timeout: float | None,
        backoff: Backoff | None,
        on_update: Callable[[Job], None] | None,
    ) -> None:
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.intervals = (backoff or Backoff()).intervals()
        self.on_update = on_update

    def pause_after(self, job: Job) -> float | None:
        if self.on_update is not None:
            self.on_update(job)
        if job.status in (JobStatus.finished, JobStatus.failed):
            return None
        interval = next(self.intervals)
        if self.deadline is not None and time.monotonic() + interval > self.deadline:
            raise JobTimeout(job, self.timeout or 0.0)
        return interval


class _Base:
    def __init__(self, base_url: str, api_key: str | None, timeout: float, http: type, transport):
        self.base_url = base_url.rstrip("/")
        self.http = http(
            base_url=self.base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def viewer_url(self, job_id: str) -> str:
        """The results viewer's page for the job, to open in a browser."""
        kind = "videos" if job_id.startswith("video_") else "images"
        return f"{self.base_url}/viewer/{kind}/{job_id}"


class Client(_Base):
    """Blocking client; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, httpx.Client, transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def submit_video(
        self,
        source: VideoSource,
        *,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        max_processing_time: int | None = None,
        content_type: str | None = None,
    ) -> str:
        """Upload a video (a path, bytes or a binary stream, streamed); its job id."""
        request = _video_request(
            source, webhook_url, webhook_secret, max_processing_time, content_type
        )
        return _accepted(self.http.post(**request))

    def submit_images(
        self,
        images: Sequence[ImageSource],
        *,
        webhook_url: str | None = None,
        max_processing_time: int | None = None,
    ) -> str:
        """Submit images (paths, or ``(external_id, bytes)``) as one batch; its job id."""
        return _accepted(
            self.http.post(**_images_request(images, webhook_url, max_processing_time))
        )

    def get(self, job_id: str) -> Job:
        return _job(self.http.get(_path(job_id)), job_id)

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        on_update: Callable[[Job], None] | None = None,
    ) -> Job:
        """Poll until the job is finished or failed (:class:`JobTimeout` after ``timeout``)."""
        polling = _Polling(timeout, backoff, on_update)
        while True:
            job = self.get(job_id)
            if (pause := polling.pause_after(job)) is None:
                return job
            time.sleep(pause)


class AsyncClient(_Base):
    """The same calls as :class:`Client`, awaitable; use ``async with``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, httpx.AsyncClient, transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def submit_video(
        self,
        source: VideoSource,
        *,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        max_processing_time: int | None = None,
        content_type: str | None = None,
    ) -> str:
        request = _video_request(
            source, webhook_url, webhook_secret, max_processing_time, content_type
        )
        if not isinstance(request["content"], bytes):  # the async client streams async chunks
            request["content"] = _read_in_thread(request["content"])
        return _accepted(await self.http.post(**request))

    async def submit_images(
        self,
        images: Sequence[ImageSource],
        *,
        webhook_url: str | None = None,
        max_processing_time: int | None = None,
    ) -> str:
        return _accepted(
            await self.http.post(**_images_request(images, webhook_url, max_processing_time))
        )

    async def get(self, job_id: str) -> Job:
        return _job(await self.http.get(_path(job_id)), job_id)

    async def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        on_update: Callable[[Job], None] | None = None,
    ) -> Job:
        polling = _Polling(timeout, backoff, on_update)
        while True:
            job = await self.get(job_id)
            if (pause := polling.pause_after(job)) is None:
                return job
            await asyncio.sleep(pause)
