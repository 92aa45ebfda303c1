"""Faces from all sampled frames into persons, and the person fields of the contract (pure).

Clustering: faces are taken in time order; each joins the person whose mean embedding is most
similar (cosine ≥ ``threshold``) unless that person already has a face in the same frame (two
faces in one frame are never one person), else starts a new person. A second pass merges
persons whose mean embeddings are within the threshold and who never share a frame, so a
person first seen from an unusual angle is reunited. Default threshold 0.45 (ArcFace cosine;
insightface's own verification threshold is in this range).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Face:
    t: float
    frame_key: str  # faces with the same key were in one frame
    area: float  # fraction of the frame
    score: float
    embedding: np.ndarray
    p_male: float | None
    age: float | None
    thumbnail_key: str | None
    allowlisted: bool


@dataclass
class Person:
    faces: list[Face] = field(default_factory=list)
    total: np.ndarray | None = None

    @property
    def centroid(self) -> np.ndarray:
        assert self.total is not None
        return self.total / max(np.linalg.norm(self.total), 1e-12)

    def add(self, face: Face) -> None:
        self.faces.append(face)
        self.total = face.embedding.copy() if self.total is None else self.total + face.embedding

    def frames(self) -> set[str]:
        return {f.frame_key for f in self.faces}


def cluster(faces: list[Face], threshold: float) -> list[Person]:
    persons: list[Person] = []
    for face in sorted(faces, key=lambda f: (f.t, -f.area)):
        best, best_sim = None, threshold
        for person in persons:
            if face.frame_key in person.frames():
                continue
            sim = float(person.centroid @ face.embedding)
            if sim >= best_sim:
                best, best_sim = person, sim
        if best is None:
            best = Person()
            persons.append(best)
        best.add(face)
    merged = True
    while merged:
        merged = False
        for i in range(len(persons)):
            for j in range(i + 1, len(persons)):
                a, b = persons[i], persons[j]
                if a.frames() & b.frames():
                    continue
                if float(a.centroid @ b.centroid) >= threshold:
                    for face in b.faces:
                        a.add(face)
                    del persons[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(persons, key=lambda p: min(f.t for f in p.faces))


def gender(faces: list[Face], confidence: float) -> str:
    ps = [f.p_male for f in faces if f.p_male is not None]
    if not ps:
        return "unidentified"
    p = float(np.mean(ps))
    if p >= confidence:
        return "male"
    if 1 - p >= confidence:
        return "female"
    return "unidentified"


def age(faces: list[Face]) -> float | None:
    ages = [f.age for f in faces if f.age is not None]
    return round(float(np.median(ages)), 1) if ages else None


def best_face(faces: list[Face]) -> Face:
    """The face whose crop best represents a person: large and confidently detected."""
    return max(faces, key=lambda f: f.area * f.score)


def prominence(groups: dict[int, list[Face]]) -> dict[int, float]:
    """Face size x time on screen (the sum of a person's face areas over sampled frames),
    relative to the most prominent person of the same scene or image."""
    raw = {k: sum(f.area for f in faces) for k, faces in groups.items()}
    top = max(raw.values(), default=0.0)
    return {k: round(v / top, 6) if top > 0 else 0.0 for k, v in raw.items()}
