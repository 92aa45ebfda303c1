"""ONNX Runtime sessions behind one interface, so every model stage picks its execution
provider (CUDA or CPU) from the same setting and fails the same clear way without its model."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

from framewise.inference import require_file

log = logging.getLogger(__name__)


def create_session(path: Path, providers: list[str], setting: str) -> ort.InferenceSession:
    """A session on the first available provider of ``providers``; :class:`ModelMissing`
    naming ``setting`` when the file is absent."""
    require_file(path, setting)
    available = ort.get_available_providers()
    chosen = [p for p in providers if p in available]
    missing = [p for p in providers if p not in available]
    if missing:
        log.warning("execution providers %s are not available here (have %s)", missing, available)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        str(path), sess_options=options, providers=chosen or ["CPUExecutionProvider"]
    )
    log.info("loaded %s on %s", path.name, session.get_providers())
    return session
