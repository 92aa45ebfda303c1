"""The results viewer: a static page (HTML, JS, CSS from this package, nothing from outside)
that reads a job through the public API, and the keyframes it shows.

The page itself holds no job data; the job and its keyframes are read with the caller's API
key, under the same access control as ``GET /v1/videos/{job_id}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParameter
from fastapi.responses import FileResponse

from framewise import keyframes, keys
from framewise.blobstore import BlobStore
from ingest_api.auth import Owner
from ingest_api.job_bodies import StoredBody
from ingest_api.problems import ProblemError, problem_responses

STATIC = Path(__file__).with_name("viewer")
STATIC_FILES = {"viewer.js": "text/javascript", "viewer.css": "text/css"}
JPEG = {200: {"content": {"image/jpeg": {}}, "description": "a JPEG"}}

# (job id, job id prefix, caller) -> the job's body (here only its access check), or a 404
FindJob = Callable[[str, str, str | None], Awaitable[StoredBody]]


def viewer_router(find_job: FindJob, blobs: BlobStore) -> APIRouter:
    router = APIRouter()

    def jpeg(key: str) -> Response:
        try:
            return Response(blobs.get_bytes(key), media_type="image/jpeg")
        except FileNotFoundError:
            raise ProblemError(404, "Not Found", "no such keyframe") from None

    @router.get(
        "/v1/videos/{job_id}/keyframe",
        response_class=Response,
        responses={**JPEG, **problem_responses(404)},
        summary="The kept keyframe nearest a time of a video (one per scene and section)",
    )
    async def video_keyframe(
        job_id: str, owner: Owner, t: Annotated[float, Query(ge=0, le=1e7)] = 0.0
    ) -> Response:
        await find_job(job_id, "video_", owner)
        slot = keyframes.nearest(keyframes.stored_slots(blobs, job_id), t)
        if slot is None:
            raise ProblemError(404, "Not Found", f"no keyframes are kept for {job_id!r}")
        return jpeg(keys.video_keyframe(job_id, slot))

    @router.get(
        "/v1/images/{job_id}/items/{index}/thumbnail",
        response_class=Response,
        responses={**JPEG, **problem_responses(404)},
        summary="A small JPEG of one image of a batch",
    )
    async def image_thumbnail(
        job_id: str, index: Annotated[int, PathParameter(ge=0, le=4096)], owner: Owner
    ) -> Response:
        await find_job(job_id, "image_batch_", owner)
        return jpeg(keys.image_thumbnail(job_id, index))

    @router.get("/viewer/videos/{job_id}", include_in_schema=False)
    @router.get("/viewer/images/{job_id}", include_in_schema=False)
    async def page(job_id: str) -> FileResponse:
        return FileResponse(STATIC / "viewer.html", media_type="text/html")

    @router.get("/viewer/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        if name not in STATIC_FILES:
            raise ProblemError(404, "Not Found", f"no viewer file {name!r}")
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name])

    return router
