"""Install-time export of a PyTorch model to ONNX, shared by every converter
(``stages/*/convert.py``). torch is imported here only, from the ``convert`` extra."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any


def export_with_dynamic_batch(
    model: Any, sample: Any, out_dir: Path, input_name: str, output_name: str
) -> Path:
    """``model`` exported (opset 17, batch axis dynamic) to a new temporary file in
    ``out_dir``, readable by every worker. The caller checks it and moves it into place, so a
    crash never leaves a half-written model under the final name."""
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.NamedTemporaryFile(dir=out_dir, suffix=".onnx", delete=False) as tmp,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation chatter
        torch.onnx.export(
            model,
            sample,
            tmp.name,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    os.chmod(tmp.name, 0o644)
    return Path(tmp.name)
