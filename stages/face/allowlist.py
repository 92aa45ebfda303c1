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
        self._identities: list[str] = []
        self._keys: list[str | None] = []  # the API key that enrolled each row
        super().__init__()

    def changed(self, records: list[AllowlistRecord]) -> None:
        rows, identities, keys = [], [], []
        for record in records:
            if record_pack(record) != self.pack:
                continue
            for text in record.embeddings:
                rows.append(decode_embedding(text))
                identities.append(record.identity_id)
                keys.append(record.owner)
        self._matrix = np.stack(rows) if rows else self._matrix[:0]
        self._identities, self._keys = identities, keys

    def match(self, embedding: np.ndarray, owner: str | None = None) -> tuple[str, float] | None:
        """The best identity enrolled by ``owner`` (the job's API key) at or above the
        threshold, with its cosine similarity; another key's identities never match."""
        with self._lock:
            mine = [i for i, key in enumerate(self._keys) if key == owner]
            if not mine:
                return None
            sims = self._matrix[mine] @ embedding.astype(np.float32)
            best = int(np.argmax(sims))
            if sims[best] >= self.threshold:
                return self._identities[mine[best]], float(sims[best])
            return None
