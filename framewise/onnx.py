"""ONNX Runtime sessions behind one interface, so every model stage picks its execution
provider (CUDA or CPU) and its threads from the same settings and fails the same clear way
without its model. The runtime is imported with the first session: the processes that only
describe stages (the supervisor, the API, the aggregator) never load it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from framewise.config import Settings
from framewise.inference import require_file

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger(__name__)


def session_options(settings: Settings) -> ort.SessionOptions:
    """``FRAMEWISE_ONNX_THREADS`` threads per session (0: onnxruntime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if settings.onnx_threads:
        options.intra_op_num_threads = settings.onnx_threads
        options.inter_op_num_threads = 1
    return options


def create_session(path: Path, settings: Settings, setting: str) -> ort.InferenceSession:
    """A session on the first available provider of ``FRAMEWISE_ONNX_PROVIDERS``;
    :class:`ModelMissing` naming ``setting`` when the file is absent."""
    import onnxruntime as ort

    require_file(path, setting)
    providers = settings.onnx_providers
    available = ort.get_available_providers()
    chosen = [p for p in providers if p in available]
    missing = [p for p in providers if p not in available]
    if missing:
        log.warning("execution providers %s are not available here (have %s)", missing, available)
    session = ort.InferenceSession(
        str(path),
        sess_options=session_options(settings),
        providers=chosen or ["CPUExecutionProvider"],
    )
    log.info("loaded %s on %s", path.name, session.get_providers())
    return session
