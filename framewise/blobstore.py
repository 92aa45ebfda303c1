"""The claim-check blob store: large media travel as files, Kafka messages carry their keys.

A local directory by default (``FRAMEWISE_DATA_DIR``); on a cluster, a volume every API replica
and worker mounts at the same path.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import uuid
from pathlib import Path

from schemas.messages import BLOB_KEY_PATTERN

_KEY = re.compile(BLOB_KEY_PATTERN)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The file of ``key``; refuses keys that would leave the store."""
        if not _KEY.match(key) or ".." in key.split("/"):
            raise ValueError(f"invalid blob key {key!r}")
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"blob key {key!r} leaves the store")
        return path

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def put_bytes(self, key: str, data: bytes) -> None:
        self._atomic_write(key, lambda f: f.write(data))

    def get_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def open_writer(self, key: str) -> io.BufferedWriter:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("wb")

    def keys_under(self, prefix: str) -> list[str]:
        """The keys of the files directly in ``prefix``, in order (not the temporary ones of
        writes in progress)."""
        path = self.path(prefix)
        if not path.is_dir():
            return []
        names = sorted(p.name for p in path.iterdir() if p.is_file() and p.name[0] != ".")
        return [f"{prefix}/{name}" for name in names]

    def delete_prefix(self, prefix: str) -> None:
        """Remove a job's files (``uploads/<job>``, ``frames/<job>``)."""
        path = self.path(prefix)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink(missing_ok=True)

    def _atomic_write(self, key: str, write) -> None:
        # Redelivered work rewrites the same key; readers never see a half-written file.
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        with tmp.open("wb") as f:
            write(f)
        os.replace(tmp, path)
