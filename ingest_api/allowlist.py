"""The allowlist endpoints: enrol a person, list, read and remove identities (each visible
only to the API key that enrolled it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, Response

from framewise import keys
from framewise.allowlist_records import AllowlistRecords
from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.topic_view import TopicView
from ingest_api.auth import Owner
from ingest_api.problems import ProblemError, problem_responses
from ingest_api.publisher import Publisher
from schemas.api import AllowlistEnrollRequest, AllowlistIdentity, AllowlistListing
from schemas.messages import AllowlistEnrollment, AllowlistRecord
from stages.decode.planner import decode_base64_image
from stages.face.settings import FaceSettings
from stages.registry import active_stages


def allowlist_router(
    settings: Settings,
    blobs: BlobStore,
    allowlist: AllowlistRecords,
    allowlist_view: TopicView,
    publisher: Publisher,
) -> APIRouter:
    router = APIRouter()

    def identity_body(record: AllowlistRecord) -> AllowlistIdentity:
        pack = record.face_pack or ("insightface" if record.embeddings else None)
        active = settings.group(FaceSettings).pack
        stale = record.status == "enrolled" and pack != active
        return AllowlistIdentity(
            identity_id=record.identity_id,
            label=record.label,
            status="needs_reenrollment" if stale else record.status,
            faces=len(record.embeddings),
            face_pack=pack,
            created_at=record.created_at,
            error=(
                f"enrolled with the {pack} face pack; the active pack is {active}: "
                "enrol this identity again"
                if stale
                else record.error
            ),
        )

    @router.post(
        "/v1/allowlist",
        status_code=202,
        response_model=AllowlistIdentity,
        response_model_exclude_none=True,
        responses=problem_responses(400, 409, 413, 422),
        summary="Enroll a person (images of one face) on the allowlist",
    )
    async def enroll(
        body: AllowlistEnrollRequest, response: Response, owner: Owner
    ) -> AllowlistIdentity:
        if "face" not in active_stages(settings):  # nobody would ever enrol it
            raise ProblemError(
                409,
                "Face analysis is off",
                "this server runs no face stage (FRAMEWISE_STAGES), so it cannot enrol faces",
            )
        images = []
        for i, image in enumerate(body.images):
            try:
                images.append(decode_base64_image(image.data_base64))
            except ValueError as exc:
                raise ProblemError(400, "Invalid image data", f"images[{i}]: {exc}") from exc
        identity_id = keys.new_identity_id()
        blob_keys = []
        for i, data in enumerate(images):
            key = keys.enrolment_image(identity_id, i)
            await asyncio.to_thread(blobs.put_bytes, key, data)
            blob_keys.append(key)
        record = AllowlistRecord(
            identity_id=identity_id,
            label=body.label,
            status="pending",
            created_at=datetime.now(UTC),
            owner=owner,
        )
        allowlist.apply(identity_id, record)
        await publisher.enrol(
            record,
            AllowlistEnrollment(
                identity_id=identity_id, label=body.label, blob_keys=blob_keys, owner=owner
            ),
        )
        response.headers["Location"] = f"/v1/allowlist/{identity_id}"
        return identity_body(record)

    @router.get(
        "/v1/allowlist",
        response_model=AllowlistListing,
        response_model_exclude_none=True,
        summary="Enrolled allowlist identities",
    )
    async def list_allowlist(owner: Owner) -> AllowlistListing:
        mine = [r for r in allowlist.records() if r.owner == owner]
        records = sorted(mine, key=lambda r: r.created_at)
        return AllowlistListing(identities=[identity_body(r) for r in records])

    async def known_identity(identity_id: str, owner: str | None) -> AllowlistRecord:
        """The caller's identity; another key's is reported like one that does not exist."""
        record = allowlist.get(identity_id)
        if record is None:
            await allowlist_view.caught_up()
            record = allowlist.get(identity_id)
        if record is None or record.owner != owner:
            raise ProblemError(404, "Not Found", f"no allowlist identity {identity_id!r}")
        return record

    @router.get(
        "/v1/allowlist/{identity_id}",
        response_model=AllowlistIdentity,
        response_model_exclude_none=True,
        responses=problem_responses(404),
    )
    async def get_identity(identity_id: str, owner: Owner) -> AllowlistIdentity:
        return identity_body(await known_identity(identity_id, owner))

    @router.delete(
        "/v1/allowlist/{identity_id}",
        status_code=204,
        responses=problem_responses(404),
        summary="Remove an identity",
    )
    async def remove_identity(identity_id: str, owner: Owner) -> Response:
        await known_identity(identity_id, owner)
        allowlist.apply(identity_id, None)
        await publisher.remove_identity(identity_id)
        return Response(status_code=204)

    return router
