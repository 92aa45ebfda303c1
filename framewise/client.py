"""A typed Python client of the Framewise REST API, sync (:class:`Client`) and async
(:class:`AsyncClient`), on httpx.

    from framewise.client import Client

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


def _video_body(source: VideoSource) -> tuple[Any, str]:
    """Request content (streamed for files) and its content type."""
    if isinstance(source, str | Path):
        path = Path(source)
        kind = mimetypes.guess_type(path.name)[0] or ""
        stream = path.open("rb")

        def chunks() -> Iterator[bytes]:
            with stream:
                yield from iter(lambda: stream.read(CHUNK), b"")

        return chunks(), kind if kind.startswith("video/") else "application/octet-stream"
    if isinstance(source, bytes):
        return source, "application/octet-stream"
    return iter(lambda: source.read(CHUNK), b""), "application/octet-stream"


def _images_body(images: Sequence[ImageSource], webhook_url: str | None) -> dict[str, Any]:
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
    return body


def _video_params(url: str | None, secret: str | None) -> dict[str, str]:
    params = {"webhook.url": url} if url else {}
    if secret:
        params["webhook.secret"] = secret
    return params


def _checked(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    try:
        problem = Problem.model_validate(response.json())
    except ValueError:
        problem = Problem(title=response.reason_phrase, status=response.status_code,
                          detail=response.text[:500])  # fmt: skip
    raise ApiProblem(problem)


def _job(response: httpx.Response, job_id: str) -> Job:
    model = VideoJob if job_id.startswith("video_") else ImageBatchJob
    return model.model_validate_json(_checked(response).content)


def _path(job_id: str) -> str:
    return f"/v1/videos/{job_id}" if job_id.startswith("video_") else f"/v1/images/{job_id}"


async def _read_in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A blocking chunk iterator read off the event loop."""
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        yield chunk


def _viewer(base_url: str, job_id: str) -> str:
    kind = "videos" if job_id.startswith("video_") else "images"
    return f"{base_url}/viewer/{kind}/{job_id}"


def _terminal(job: Job) -> bool:
    return job.status in (JobStatus.finished, JobStatus.failed)


class Client:
    """Blocking client; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

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
        content, guessed = _video_body(source)
        response = self.http.post(
            "/v1/videos",
            content=content,
            params=_video_params(webhook_url, webhook_secret),
            headers={"Content-Type": content_type or guessed, **_limit(max_processing_time)},
        )
        return JobAccepted.model_validate_json(_checked(response).content).job_id

    def submit_images(
        self,
        images: Sequence[ImageSource],
        *,
        webhook_url: str | None = None,
        max_processing_time: int | None = None,
    ) -> str:
        """Submit images (paths, or ``(external_id, bytes)``) as one batch; its job id."""
        response = self.http.post(
            "/v1/images",
            json=_images_body(images, webhook_url),
            headers=_limit(max_processing_time),
        )
        return JobAccepted.model_validate_json(_checked(response).content).job_id

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
        deadline = None if timeout is None else time.monotonic() + timeout
        for interval in (backoff or Backoff()).intervals():
            job = self.get(job_id)
            if on_update is not None:
                on_update(job)
            if _terminal(job):
                return job
            if deadline is not None and time.monotonic() + interval > deadline:
                raise JobTimeout(job, timeout or 0.0)
            time.sleep(interval)
        raise AssertionError("unreachable")

    def viewer_url(self, job_id: str) -> str:
        """The results viewer's page for the job, to open in a browser."""
        return _viewer(self.base_url, job_id)


class AsyncClient:
    """The same calls as :class:`Client`, awaitable; use ``async with``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(
            base_url=self.base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

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
        content, guessed = _video_body(source)
        if not isinstance(content, bytes):  # httpx's async client streams async chunks
            content = _read_in_thread(content)
        response = await self.http.post(
            "/v1/videos",
            content=content,
            params=_video_params(webhook_url, webhook_secret),
            headers={"Content-Type": content_type or guessed, **_limit(max_processing_time)},
        )
        return JobAccepted.model_validate_json(_checked(response).content).job_id

    async def submit_images(
        self,
        images: Sequence[ImageSource],
        *,
        webhook_url: str | None = None,
        max_processing_time: int | None = None,
    ) -> str:
        response = await self.http.post(
            "/v1/images",
            json=_images_body(images, webhook_url),
            headers=_limit(max_processing_time),
        )
        return JobAccepted.model_validate_json(_checked(response).content).job_id

    async def get(self, job_id: str) -> Job:
        return _job(await self.http.get(_path(job_id)), job_id)

    async def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        on_update: Callable[[Job], None] | None = None,
    ) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        for interval in (backoff or Backoff()).intervals():
            job = await self.get(job_id)
            if on_update is not None:
                on_update(job)
            if _terminal(job):
                return job
            if deadline is not None and time.monotonic() + interval > deadline:
                raise JobTimeout(job, timeout or 0.0)
            await asyncio.sleep(interval)
        raise AssertionError("unreachable")

    def viewer_url(self, job_id: str) -> str:
        """The results viewer's page for the job, to open in a browser."""
        return _viewer(self.base_url, job_id)
