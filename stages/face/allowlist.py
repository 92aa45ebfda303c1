"""The allowlist: enrolled identities and matching faces against them.

Identities live on the compacted topic ``framewise.allowlist.v1`` (key: identity id; a null
value removes one). Every face worker and every API replica reads the whole topic into an
:class:`AllowlistIndex`, so each of them sees every enrollment.
"""

from __future__ import annotations

import threading

import numpy as np

from schemas.messages import AllowlistRecord


class AllowlistIndex:
    """Thread-safe: the topic follower writes, analyzer threads read."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._lock = threading.Lock()
        self._records: dict[str, AllowlistRecord] = {}
        self._matrix = np.zeros((0, 512), np.float32)
        self._owners: list[str] = []

    def apply(self, identity_id: str, record: AllowlistRecord | None) -> None:
        from stages.face.stage import decode_embedding

        with self._lock:
            if record is None:
                self._records.pop(identity_id, None)
            else:
                self._records[identity_id] = record
            rows, owners = [], []
            for rid, rec in self._records.items():
                for text in rec.embeddings:
                    rows.append(decode_embedding(text))
                    owners.append(rid)
            self._matrix = np.stack(rows) if rows else np.zeros((0, 512), np.float32)
            self._owners = owners

    def records(self) -> list[AllowlistRecord]:
        with self._lock:
            return list(self._records.values())

    def get(self, identity_id: str) -> AllowlistRecord | None:
        with self._lock:
            return self._records.get(identity_id)

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
