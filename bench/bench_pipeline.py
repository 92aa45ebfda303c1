"""Throughput and memory of the decode and scene stages, and of the whole pipeline, each as a
ratio against a baseline measured in the same run on the same video.

    python bench/bench_pipeline.py [VIDEO]     (default: $FRAMEWISE_TEST_MEDIA/video/testvideo.mp4)

* decode: the decode stage's work (PyAV decode, scaling to both profiles, batch files) vs a
  raw PyAV decode loop that only decodes;
* scene: decode + scene features + shot detection vs PySceneDetect's ContentDetector (which
  also decodes);
* memory: peak traced allocations of decode + scene features on a synthetic video 1x and 4x
  as long (flat means the ratio stays near 1);
* OCR: the OCR stage's analyzer (PP-OCR + language per line) vs rapidocr called directly with
  the same settings, on the same detail frames;
* tags: the tag stage's analyzer vs the ONNX classifier session called directly (needs
  ``FRAMEWISE_MODELS_DIR`` with the classifier; skipped otherwise);
* faces: the face stage's analyzer (detection, alignment, batched embeddings and gender/age,
  thumbnails) vs insightface's own per-face calls on the same frames of a group-photo video
  (the real SCRFD detector with recognition/genderage stand-ins of the real signatures);
* end to end: wall time from upload to finished result through broker, workers and API, vs the
  video's duration.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from framewise.blobstore import BlobStore  # noqa: E402
from framewise.broker import free_port, wait_for_port  # noqa: E402
from framewise.cli import submit, wait_for  # noqa: E402
from framewise.config import Settings  # noqa: E402
from framewise.media import decode_video_segment  # noqa: E402
from schemas.messages import FrameBatch  # noqa: E402
from stages.profiles import profiles  # noqa: E402
from stages.scene.detector import SceneFeatures, ShotDetector, frame_features  # noqa: E402
from tests.conftest import frame_message, write_cut_video  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def raw_decode(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def decode_stage(path: Path, blobs: BlobStore) -> int:
    selected = list(profiles(Settings()).values())
    frames = 0
    for batch in decode_video_segment(path, selected, 0.0, None, 1 << 30):
        blobs.put_array(f"bench/{batch.profile}-{batch.batch_index}.npy", batch.frames)
        if batch.profile == "motion":
            frames += len(batch.timestamps) - batch.context_frames
    return frames


def scene_stage(path: Path) -> int:
    motion = profiles(Settings())["motion"]
    payloads = []
    rate = 0.0
    for batch in decode_video_segment(path, [motion], 0.0, None, 1 << 30):
        rate = batch.rate
        payloads.append(
            frame_features(
                batch.frames, batch.context_frames, batch.frame_indices, batch.timestamps, rate
            ).to_payload()
        )
    features = SceneFeatures.from_payloads(payloads)
    return len(ShotDetector().boundaries(features, rate)) + 1


def pyscenedetect(path: Path) -> int:
    from scenedetect import ContentDetector, detect

    return len(detect(str(path), ContentDetector()))


def detail_batches(path: Path, settings: Settings) -> list[tuple[np.ndarray, FrameBatch]]:
    out = []
    for batch in decode_video_segment(path, [profiles(settings)["detail"]], 0.0, None, 1 << 30):
        message = frame_message(batch, ["ocr", "tag"])
        out.append((batch.frames, message))
    return out


def bench_ocr(batches) -> None:
    from rapidocr import RapidOCR

    from stages.ocr.stage import OcrAnalyzer

    settings = Settings(ocr_fps=100.0)  # every detail frame, as the direct loop does
    analyzer = OcrAnalyzer(settings)
    direct = RapidOCR(
        params={
            "Global.log_level": "warning",
            "Global.use_cls": False,
            "Det.limit_type": "max",
            "Det.limit_side_len": settings.ocr_det_max_side,
        }
    )
    frames = [f for frames, _ in batches for f in frames]
    warm = batches[0][1].model_copy(update={"timestamps": [0.0], "frame_indices": [0]})
    analyzer.analyze(frames[0][None], warm)  # warm-up: sessions, language models
    direct(np.ascontiguousarray(frames[0][..., ::-1]))
    t_stage, _ = timed(lambda: [analyzer.analyze(f, m) for f, m in batches])
    t_direct, _ = timed(lambda: [direct(np.ascontiguousarray(f[..., ::-1])) for f in frames])
    n = len(frames)
    print(f"ocr      rapidocr direct    {n / t_direct:8.2f} frames/s")
    print(
        f"ocr      stage              {n / t_stage:8.2f} frames/s   "
        f"ratio {t_direct / t_stage:.2f}x of direct"
    )


def bench_tags(batches) -> None:
    import cv2
    import onnxruntime as ort

    from stages.tag.stage import TagAnalyzer

    settings = Settings()
    model = settings.model_path(settings.tag_model)
    if not model.is_file():
        print(f"tags     skipped: no classifier at {model} (set FRAMEWISE_MODELS_DIR)")
        return
    analyzer = TagAnalyzer(settings)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    frames = [f for frames, _ in batches for f in frames]

    def direct() -> None:
        for f in frames:
            h, w = f.shape[:2]
            s = 224 / min(h, w)
            r = cv2.resize(f, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
            top, left = (r.shape[0] - 224) // 2, (r.shape[1] - 224) // 2
            x = r[top : top + 224, left : left + 224, ::-1].transpose(2, 0, 1)[None]
            session.run(None, {name: x.astype(np.float16)})

    direct()
    t_direct, _ = timed(direct)
    t_stage, _ = timed(lambda: [analyzer.analyze(f, m) for f, m in batches])
    n = len(frames)
    print(f"tags     model direct       {n / t_direct:8.1f} frames/s")
    print(
        f"tags     stage              {n / t_stage:8.1f} frames/s   "
        f"ratio {t_direct / t_stage:.2f}x of direct"
    )


def bench_faces(media: Path) -> None:
    import cv2

    from stages.face.stage import FaceAnalyzer
    from tests.conftest import MODELS, write_image_video
    from tests.face_standins import make_pack

    detector = MODELS / "face" / "det_500m.onnx"
    if not detector.is_file():
        print(f"faces    skipped: no detector at {detector}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_pack(root / "models" / "face", detector)
        video = root / "group.mp4"
        write_image_video(video, [media / "images" / "faces" / "t1.jpg"], 8.0, size=(1280, 886))
        settings = Settings(models_dir=root / "models", data_dir=root / "data")
        analyzer = FaceAnalyzer(settings)
        batches = detail_batches(video, settings)
        frames = [np.ascontiguousarray(f[..., ::-1]) for fr, _ in batches for f in fr]
        pack = analyzer.pack

        def direct() -> int:
            from insightface.app.common import Face

            faces = 0
            for bgr in frames:
                boxes, kps = pack.detector.detect(bgr, input_size=(640, 640))
                for box, points in zip(boxes, kps, strict=True):
                    face = Face(bbox=box[:4], kps=points, det_score=box[4])
                    pack.recognizer.get(bgr, face)
                    pack.genderage.get(bgr, face)
                    cv2.imencode(".jpg", pack.align(bgr, face_kps(points)))
                    faces += 1
            return faces

        direct()
        t_direct, n_faces = timed(direct)
        t_stage, _ = timed(lambda: [analyzer.analyze(f, m) for f, m in batches])
    n = len(frames)
    print(f"faces    insightface direct {n / t_direct:8.1f} frames/s   ({n_faces} faces)")
    print(
        f"faces    stage              {n / t_stage:8.1f} frames/s   "
        f"ratio {t_direct / t_stage:.2f}x of direct"
    )


def face_kps(points):
    from stages.face.models import Detection

    return Detection(np.zeros(4), points, 1.0)


def peak_memory(path: Path) -> int:
    tracemalloc.start()
    scene_stage(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def end_to_end(path: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        port, api_port = free_port(), free_port()
        env = dict(
            os.environ,
            FRAMEWISE_EMBEDDED_BROKER_PORT=str(port),
            FRAMEWISE_API_PORT=str(api_port),
            FRAMEWISE_DATA_DIR=tmp,
            FRAMEWISE_PARTITIONS="4",
        )
        env.pop("FRAMEWISE_KAFKA_BOOTSTRAP", None)
        up = subprocess.Popen(
            [sys.executable, "-m", "framewise.cli", "up"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port("127.0.0.1", api_port, timeout=60)
            url = f"http://127.0.0.1:{api_port}"
            # Warm-up job: consumer groups join on the first messages.
            wait_for(url, submit([path], url, None, None), lambda s: None)
            start = time.perf_counter()
            body = wait_for(url, submit([path], url, None, None), lambda s: None)
            assert body["status"] == "finished", body
            return time.perf_counter() - start
        finally:
            up.terminate()
            up.wait(timeout=30)


def main() -> None:
    media = Path(os.environ.get("FRAMEWISE_TEST_MEDIA", ROOT.parent / "shared" / "media"))
    video = Path(sys.argv[1]) if len(sys.argv) > 1 else media / "video" / "testvideo.mp4"
    with av.open(str(video)) as c:
        s = c.streams.video[0]
        duration = float(s.duration * s.time_base)
    print(f"video: {video.name}, {duration:.1f} s")

    t_raw, n_raw = timed(lambda: raw_decode(video))
    with tempfile.TemporaryDirectory() as tmp:
        t_dec, n_dec = timed(lambda: decode_stage(video, BlobStore(Path(tmp))))
    print(f"decode   raw PyAV loop      {n_raw / t_raw:8.1f} frames/s")
    print(
        f"decode   stage (2 profiles) {n_dec / t_dec:8.1f} frames/s   "
        f"ratio {t_raw / t_dec:.2f}x of raw"
    )

    t_ours, shots = timed(lambda: scene_stage(video))
    t_psd, psd_shots = timed(lambda: pyscenedetect(video))
    print(f"scene    PySceneDetect      {n_raw / t_psd:8.1f} frames/s   ({psd_shots} shots)")
    print(
        f"scene    stage              {n_raw / t_ours:8.1f} frames/s   ({shots} shots)   "
        f"ratio {t_psd / t_ours:.2f}x PySceneDetect's speed"
    )

    with tempfile.TemporaryDirectory() as tmp:
        short, long = Path(tmp) / "30s.mp4", Path(tmp) / "120s.mp4"
        write_cut_video(short, 30, 10, size=(640, 360))
        write_cut_video(long, 120, 10, size=(640, 360))
        m_short, m_long = peak_memory(short), peak_memory(long)
    print(
        f"memory   peak 30 s video {m_short / 2**20:6.1f} MiB, 120 s video "
        f"{m_long / 2**20:6.1f} MiB   ratio {m_long / m_short:.2f} (flat = 1)"
    )

    batches = detail_batches(video, Settings())
    bench_ocr(batches)
    bench_tags(batches)
    bench_faces(media)

    wall = end_to_end(video)
    print(
        f"e2e      {wall:.2f} s wall for {duration:.1f} s of video   "
        f"ratio {duration / wall:.1f}x real time"
    )


if __name__ == "__main__":
    main()
