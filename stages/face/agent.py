"""The face worker's extra agents: it follows the allowlist topic (every worker reads every
partition, like a global table) and computes the embeddings of new enrollments."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from framewise import keys, topics
from framewise.blobstore import BlobStore
from framewise.config import Settings
from framewise.kafka import in_thread, to_bytes, topic, valid_events
from framewise.media import MediaError, decode_image
from framewise.topic_view import TopicView
from schemas.messages import AllowlistEnrollment, AllowlistRecord
from stages.face.analyzer import FaceAnalyzer
from stages.face.embedding import encode_embedding

log = logging.getLogger(__name__)


def enrollment_embeddings(
    analyzer: FaceAnalyzer, blobs: BlobStore, request: AllowlistEnrollment, max_pixels: int
) -> tuple[list[str], str | None]:
    """The embedding of the largest face in each image; an error when no image has one."""
    embeddings, problems = [], []
    pack = analyzer.pack
    for n, key in enumerate(request.blob_keys):
        try:
            rgb = decode_image(blobs.get_bytes(key), max_pixels)
        except (MediaError, FileNotFoundError) as exc:
            problems.append(f"images[{n}]: {getattr(exc, 'message', exc)}")
            continue
        detections = pack.detect(rgb)
        if not detections:
            problems.append(f"images[{n}]: no face found")
            continue
        largest = max(detections, key=lambda d: (d.bbox[2] - d.bbox[0]) * (d.bbox[3] - d.bbox[1]))
        vector = pack.embed(pack.align(rgb, [largest]))[0]
        embeddings.append(encode_embedding(vector))
    return embeddings, (None if embeddings else "; ".join(problems) or "no images")


def attach_face_agents(app, settings: Settings, analyzer: FaceAnalyzer) -> None:
    allowlist = topic(app, topics.ALLOWLIST)
    requests = topic(app, topics.ALLOWLIST_REQUESTS)
    blobs = BlobStore(settings.data_dir)
    view = TopicView(settings, topics.ALLOWLIST.name, analyzer.allowlist.on_record)

    @app.task
    async def follow_allowlist() -> None:
        """Follow the allowlist for the worker's life; the worker cancels this task when it
        stops, and the view's consumer is closed then (else aiokafka reports it unclosed)."""
        await view.start()
        try:
            await asyncio.Event().wait()
        finally:
            await view.stop()

    @app.agent(requests, name="framewise.face.enroll")
    async def enroll(stream):
        parse = AllowlistEnrollment.model_validate_json
        async for _, request in valid_events(
            app, topics.ALLOWLIST_REQUESTS, stream, parse, "AllowlistEnrollment"
        ):
            embeddings, error = await in_thread(
                enrollment_embeddings, analyzer, blobs, request, settings.max_pixels
            )
            existing = analyzer.allowlist.get(request.identity_id)
            record = AllowlistRecord(
                identity_id=request.identity_id,
                label=request.label,
                status="enrolled" if embeddings else "failed",
                embeddings=embeddings,
                face_pack=analyzer.pack.name,
                owner=request.owner,
                error=error,
                created_at=existing.created_at if existing else datetime.now(UTC),
            )
            await allowlist.send(key=request.identity_id.encode(), value=to_bytes(record))
            blobs.delete_prefix(keys.enrolment_prefix(request.identity_id))
