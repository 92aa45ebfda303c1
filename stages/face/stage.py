"""The face stage: who appears in which scene (videos) and in each image."""

from __future__ import annotations

import base64
from typing import Any

import cv2
import numpy as np

from framewise.blobstore import BlobStore
from framewise.config import Settings
from schemas.messages import FrameBatch
from stages.face import clustering, packs
from stages.face.allowlist import AllowlistIndex
from stages.face.embedding import decode_embedding, encode_embedding
from stages.registry import StageSpec, VideoContext


class FaceAnalyzer:
    """Detect, align, embed (batched), gender/age (batched), match the allowlist, with the
    configured face pack; the aligned crop of each face is kept in the blob store for the
    person's thumbnail."""

    def __init__(self, settings: Settings, allowlist: AllowlistIndex | None = None) -> None:
        self.settings = settings
        self.pack = packs.make_pack(settings).load()
        self.blobs = BlobStore(settings.data_dir)
        self.allowlist = allowlist or AllowlistIndex(
            self.pack.name, self.pack.embedding_size, packs.thresholds(settings).allowlist
        )

    def analyze(self, frames: np.ndarray, batch: FrameBatch) -> dict[str, Any]:
        own = frames[batch.context_frames :]
        times = batch.timestamps[batch.context_frames :]
        found = []  # (frame index, face index in the frame, aligned face, attributes)
        for i, rgb in enumerate(own):
            detections = [
                d
                for d in self.pack.detect(rgb)
                if min(d.bbox[2] - d.bbox[0], d.bbox[3] - d.bbox[1]) >= self.settings.face_min_size
            ]
            faces = self.pack.align(rgb, detections)
            attributes = self.pack.attributes(rgb, faces)
            found += [(i, k, f, a) for k, (f, a) in enumerate(zip(faces, attributes, strict=True))]
        embeddings = self.pack.embed([face for _, _, face, _ in found])
        out: dict[int, list] = {i: [] for i in range(len(own))}
        for (i, k, face, (p_male, age)), embedding in zip(found, embeddings, strict=True):
            h, w = own[i].shape[:2]
            x0, y0, x1, y1 = np.clip(face.detection.bbox, 0, [w, h, w, h])
            key = (
                f"frames/{batch.job_id}/faces/{batch.segment_index:05d}-"
                f"{batch.batch_index:05d}-{i:03d}-{k:03d}.jpg"
            )
            jpeg = cv2.imencode(".jpg", face.chip[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
            self.blobs.put_bytes(key, jpeg.tobytes())
            out[i].append(
                {
                    "box": [round(float(v), 5) for v in (x0 / w, y0 / h, x1 / w, y1 / h)],
                    "area": round(float((x1 - x0) * (y1 - y0) / (w * h)), 6),
                    "score": round(face.detection.score, 4),
                    "embedding": encode_embedding(embedding),
                    "pack": self.pack.name,
                    "p_male": p_male,
                    "age": age,
                    "thumbnail": key,
                    "allowlisted": self.allowlist.match(embedding) is not None,
                }
            )
        return {"frames": [{"t": times[i], "faces": out[i]} for i in range(len(own))]}


def _faces(payloads: list[dict], pack: str) -> list[clustering.Face]:
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


def _person_body(
    person: clustering.Person,
    person_id: str,
    prominence: float,
    settings: Settings,
    thumbnails: dict[str, str],
) -> dict[str, Any]:
    best = clustering.best_face(person.faces)
    matched = sum(f.allowlisted for f in person.faces)
    body = {
        "person_id": person_id,
        "gender": clustering.gender(person.faces, packs.thresholds(settings).gender_confidence),
        "face_embedding": [round(float(v), 6) for v in person.centroid],
        "allowlisted": matched * 2 >= len(person.faces),
        "relative_prominence": prominence,
        "age": clustering.age(person.faces),
        "face_thumbnail": thumbnails.get(best.thumbnail_key or ""),
    }
    return {k: v for k, v in body.items() if v is not None}


def _thumbnails(persons: list[clustering.Person], settings: Settings) -> dict[str, str]:
    blobs = BlobStore(settings.data_dir)
    out = {}
    for person in persons:
        key = clustering.best_face(person.faces).thumbnail_key
        if key and blobs.exists(key):
            out[key] = base64.b64encode(blobs.get_bytes(key)).decode()
    return out


def finalize_video(ctx: VideoContext, settings: Settings) -> dict[str, Any]:
    faces = _faces(ctx.payloads, settings.face_pack)
    persons = clustering.cluster(faces, packs.thresholds(settings).cluster)
    thumbnails = _thumbnails(persons, settings)
    scenes = [(s["start_seconds"], s["end_seconds"]) for s in ctx.result.get("raw_scenes", [])]
    if not scenes:
        scenes = [(0.0, ctx.probe.duration_seconds)]
    constellation = []
    for start, end in scenes:
        present = {k: [f for f in p.faces if start <= f.t < end] for k, p in enumerate(persons)}
        present = {k: fs for k, fs in present.items() if fs}
        weights = clustering.prominence(present)
        constellation.append(
            {
                "time_segment": {"start_seconds": start, "end_seconds": end},
                "person_ids": [
                    _person_body(persons[k], f"person_{k + 1}", weights[k], settings, thumbnails)
                    for k in sorted(present)
                ],
            }
        )
    return {"person_constellation_scenes": constellation}


def finalize_image(payload: dict[str, Any], settings: Settings) -> dict[str, Any]:
    faces = _faces([payload], settings.face_pack)
    persons = [clustering.Person() for _ in faces]  # in one image every face is its own person
    for person, face in zip(persons, faces, strict=True):
        person.add(face)
    weights = clustering.prominence({k: p.faces for k, p in enumerate(persons)})
    thumbnails = _thumbnails(persons, settings)
    return {
        "person_ids": [
            _person_body(p, f"person_{k + 1}", weights[k], settings, thumbnails)
            for k, p in enumerate(persons)
        ]
    }


def _attach(app, settings: Settings, analyzer) -> None:
    from stages.face.agent import attach_face_agents  # imported where a face worker runs

    attach_face_agents(app, settings, analyzer)


FACE = StageSpec(
    name="face",
    profile="detail",
    media_types=frozenset({"video", "image"}),
    make_analyzer=FaceAnalyzer,
    finalize_video=finalize_video,
    finalize_image=finalize_image,
    attach=_attach,
    installed=packs.installed,
    models=lambda settings: packs.make_pack(settings).models(),
)
