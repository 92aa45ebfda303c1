"""Matching faces against the allowlist, with the embeddings of the active face pack only:
an identity enrolled with another pack (another embedding space) never matches, and the API
reports it as ``needs_reenrollment``."""

from __future__ import annotations

import numpy as np

from framewise.allowlist_records import AllowlistRecords
from schemas.messages import AllowlistRecord
from stages.face.embedding import decode_embedding

LEGACY_PACK = "insightface"  # records written before packs were recorded held ArcFace vectors


def record_pack(record: AllowlistRecord) -> str:
    return record.face_pack or LEGACY_PACK


class AllowlistIndex(AllowlistRecords):
    def __init__(self, pack: str, dimensions: int, threshold: float) -> None:
        self.pack = pack
        self.threshold = threshold
        self._matrix = np.zeros((0, dimensions), np.float32)
        self._owners: list[str] = []
        super().__init__()

    def changed(self, records: list[AllowlistRecord]) -> None:
        rows, owners = [], []
        for record in records:
            if record_pack(record) != self.pack:
                continue
            for text in record.embeddings:
                rows.append(decode_embedding(text))
                owners.append(record.identity_id)
        self._matrix = np.stack(rows) if rows else self._matrix[:0]
        self._owners = owners

    def match(self, embedding: np.ndarray) -> tuple[str, float] | None:
        """The best enrolled identity at or above the threshold, with its cosine similarity."""
        with self._lock:
            if not len(self._owners):
                return None
            sims = self._matrix @ embedding.astype(np.float32)
            best = int(np.argmax(sims))
            if sims[best] >= self.threshold:
                return self._owners[best], float(sims[best])
            return None
