"""The face stage: who appears in which scene (videos) and in each image."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from framewise.blobstore import BlobStore
from framewise.config import Settings
from stages.face import clustering, packs
from stages.face.embedding import decode_embedding
from stages.face.settings import FaceSettings
from stages.spec import BatchAnalyzer, StageSpec, VideoContext


def _faces(payloads: Iterable[dict], pack: str) -> list[clustering.Face]:
    """The faces of the payloads made by ``pack`` (embeddings of two packs never meet)."""
    return [
        clustering.Face(
            t=frame["t"],
            frame_key=str(frame["t"]),
            area=face["area"],
            score=face["score"],
            embedding=decode_embedding(face["embedding"]),
            p_male=face["p_male"],
            age=face["age"],
            thumbnail_key=face["thumbnail"],
            allowlisted=face["allowlisted"],
        )
        for payload in payloads
        for frame in payload.get("frames", [])
        for face in frame["faces"]
        if face.get("pack", pack) == pack
    ]


def _person_fields(
    person: clustering.Person, person_id: str, settings: Settings, thumbnails: dict[str, str]
) -> dict[str, Any]:
    """A person's body but its prominence, which is per scene. Made once per person: a long
    video lists the same person in many scenes, and each listing then shares the embedding."""
    best = clustering.best_face(person.faces)
    matched = sum(f.allowlisted for f in person.faces)
    body = {
        "person_id": person_id,
        "gender": clustering.gender(person.faces, packs.thresholds(settings).gender_confidence),
        "face_embedding": [round(float(v), 6) for v in person.centroid],
        "allowlisted": matched * 2 >= len(person.faces),
        "age": clustering.age(person.faces),
        "face_thumbnail": thumbnails.get(best.thumbnail_key or ""),
    }
    return {k: v for k, v in body.items() if v is not None}


def _person_bodies(persons: list[clustering.Person], settings: Settings) -> list[dict[str, Any]]:
    thumbnails = _thumbnails(persons, settings)
    return [
        _person_fields(person, f"person_{k + 1}", settings, thumbnails)
        for k, person in enumerate(persons)
    ]


def _thumbnails(persons: list[clustering.Person], settings: Settings) -> dict[str, str]:
    blobs = BlobStore(settings.data_dir)
    out = {}
    for person in persons:
        key = clustering.best_face(person.faces).thumbnail_key
        if key and blobs.exists(key):
            out[key] = base64.b64encode(blobs.get_bytes(key)).decode()
    return out


def finalize_video(ctx: VideoContext, settings: Settings) -> dict[str, Any]:
    faces = _faces(ctx.payloads, settings.group(FaceSettings).pack)
    persons = clustering.cluster(faces, packs.thresholds(settings).cluster)
    bodies = _person_bodies(persons, settings)
    constellation = []
    for start, end in ctx.shots():
        present = {k: [f for f in p.faces if start <= f.t < end] for k, p in enumerate(persons)}
        present = {k: fs for k, fs in present.items() if fs}
        weights = clustering.prominence(present)
        constellation.append(
            {
                "time_segment": {"start_seconds": start, "end_seconds": end},
                "person_ids": [
                    {**bodies[k], "relative_prominence": weights[k]} for k in sorted(present)
                ],
            }
        )
    return {"person_constellation_scenes": constellation}


def finalize_image(payload: dict[str, Any], settings: Settings) -> dict[str, Any]:
    faces = _faces([payload], settings.group(FaceSettings).pack)
    persons = [clustering.Person() for _ in faces]  # in one image every face is its own person
    for person, face in zip(persons, faces, strict=True):
        person.add(face)
    weights = clustering.prominence({k: p.faces for k, p in enumerate(persons)})
    bodies = _person_bodies(persons, settings)
    return {
        "person_ids": [{**body, "relative_prominence": weights[k]} for k, body in enumerate(bodies)]
    }


def make_face_analyzer(settings: Settings) -> BatchAnalyzer:
    """The analyzer, imported in the face worker only: the processes that merely describe the
    stage (the aggregator, the API) skip its tracks, allowlist index and image decoding."""
    from stages.face.analyzer import FaceAnalyzer

    return FaceAnalyzer(settings)


def attach_agents(app: Any, settings: Settings, analyzer: BatchAnalyzer) -> None:
    """The face worker's allowlist agents (imported there only, as the analyzer is)."""
    from stages.face.agent import attach_face_agents

    attach_face_agents(app, settings, analyzer)


FACE = StageSpec(
    name="face",
    profile="detail",
    media_types=frozenset({"video", "image"}),
    make_analyzer=make_face_analyzer,
    requires=("scene",),
    finalize_video=finalize_video,
    finalize_image=finalize_image,
    attach=attach_agents,
    installed=packs.installed,
    models=lambda settings: packs.make_pack(settings).models(),
)
