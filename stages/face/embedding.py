"""Face embeddings on the wire: base64 float16, a quarter of the JSON size of floats and far
more precision than identity needs. Any length (128 for dlib, 512 for ArcFace)."""

from __future__ import annotations

import base64

import numpy as np


def encode_embedding(vector: np.ndarray) -> str:
    return base64.b64encode(vector.astype(np.float16).tobytes()).decode()


def decode_embedding(text: str) -> np.ndarray:
    vector = np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(np.float32)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)
