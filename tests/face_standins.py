"""Small ONNX stand-ins with the real signatures of insightface's recognition and genderage
models, whose weights are not available offline.

They let loading, routing, alignment, batching, clustering, allowlist matching and every result
field run for real. They are not trained: identity, age and gender accuracy are NOT tested.
The recogniser is a fixed random projection of the mean-centred, 8x-downsampled aligned face,
so the same face gives the same embedding and different faces differ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_recognizer(path: Path, seed: int = 0) -> None:
    """ArcFace signature: input [N,3,112,112] -> output [N,512]."""
    rng = np.random.default_rng(seed)
    projection = rng.standard_normal((3 * 14 * 14, 512)).astype(np.float32)
    nodes = [
        helper.make_node(
            "AveragePool", ["input.1"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8], name="pool"
        ),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1, name="flatten"),
        helper.make_node("ReduceMean", ["flat"], ["mean"], axes=[1], keepdims=1, name="mean"),
        helper.make_node("Sub", ["flat", "mean"], ["centred"], name="centre"),
        helper.make_node("MatMul", ["centred", "W"], ["683"], name="project"),
    ]
    graph = helper.make_graph(
        nodes,
        "arcface_standin",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", 512])],
        [numpy_helper.from_array(projection, "W")],
    )
    _save(graph, path)


def write_genderage(path: Path) -> None:
    """genderage signature: input [N,3,96,96] -> output [N,3] (female, male logits; age/100)."""
    weights = np.array([[4.0, -4.0, 0.2], [-4.0, 4.0, 0.2], [0.0, 0.0, 0.2]], np.float32)
    bias = np.array([0.0, 0.0, 0.2], np.float32)
    nodes = [
        helper.make_node("GlobalAveragePool", ["data"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["flat", "W", "b"], ["fc1"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "genderage_standin",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["None", 3, 96, 96])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["None", 3])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    _save(graph, path)


def make_pack(directory: Path, detector: Path) -> Path:
    """A pack in insightface's layout: the real SCRFD detector plus the two stand-ins."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / detector.name).symlink_to(detector)
    write_recognizer(directory / "w600k_standin.onnx")
    write_genderage(directory / "genderage.onnx")
    return directory
