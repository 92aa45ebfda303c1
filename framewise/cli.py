"""The ``framewise`` command: run the whole service, one worker, the API, or submit media."""

from __future__ import annotations

import argparse
import asyncio
import mimetypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from framewise.config import Settings, get_settings

CORE_ROLES = ("decode", "aggregator", "webhook")


def worker_roles(settings: Settings) -> list[str]:
    from stages.registry import active_stages

    return ["decode", *active_stages(settings), "aggregator", "webhook"]


def build_worker_app(role: str, settings: Settings):
    """The Faust app of one worker role."""
    if role == "decode":
        from stages.decode.agent import build_decode_app

        return build_decode_app(settings)
    if role == "aggregator":
        from stages.aggregator.agent import build_aggregator_app

        return build_aggregator_app(settings)
    if role == "webhook":
        from stages.webhook.agent import build_webhook_app

        return build_webhook_app(settings)
    from stages.registry import stages
    from stages.worker import build_stage_app

    known = stages()
    if role not in known:
        raise SystemExit(f"unknown worker {role!r}; choose from {[*CORE_ROLES, *known]}")
    return build_stage_app(known[role], settings)


def cmd_worker(args: argparse.Namespace) -> int:
    from faust.worker import Worker

    from framewise.kafka import ensure_topics

    settings = get_settings()
    asyncio.run(ensure_topics(settings))
    app = build_worker_app(args.role, settings)
    from framewise.metrics import serve

    serve(settings.metrics_port)
    Worker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

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
    from stages.face.packs import PACKS, make_pack
    from stages.registry import active_stages, stages
    from stages.tag.convert import install_default_classifier

    settings = get_settings()
    if args.action == "install":
        target = install_default_classifier(settings.builtin_models_dir, force=args.force)
        print(f"default classifier: {target}")
    if args.action == "fetch":
        if not args.pack or not args.sha256:
            raise SystemExit("framewise models fetch PACK --sha256 HEX [--url URL]")
        print(f"installed into {fetch_pack(args.pack, args.sha256, settings, args.url)}")
    active = active_stages(settings)
    print("models the stages load:")
    for name, spec in stages().items():
        for card, path in spec.models(settings):
            state = "installed" if path.exists() else "MISSING"
            use = "commercial use allowed" if card.commercial_use else "NOT for commercial use"
            print(f"  {name:5} {card.role}: {card.name}  [{state}: {path}]")
            print(f"        license {card.license} ({use}); source: {card.source}")
    for name in PACKS:
        cards = make_pack(settings.model_copy(update={"face_pack": name})).models()
        free = all(card.commercial_use for card, _ in cards)
        active_mark = " (active)" if name == settings.face_pack else ""
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


class Supervisor:
    """Runs child processes with their output prefixed by role; restarts one that dies."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, list[str]] = {}
        self.stopping = False

    def start(self, role: str, command: list[str]) -> None:
        self.commands[role] = command
        proc = subprocess.Popen(
            command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.children[role] = proc
        threading.Thread(target=self._pump, args=(role, proc), daemon=True).start()

    @staticmethod
    def _pump(role: str, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(f"{role:>10} | {line}")
            sys.stdout.flush()

    def watch(self) -> None:
        while not self.stopping:
            for role, proc in list(self.children.items()):
                if proc.poll() is not None and not self.stopping:
                    print(f"{role:>10} | exited with {proc.returncode}; restarting", flush=True)
                    self.start(role, self.commands[role])
            time.sleep(1.0)

    def stop(self) -> None:
        self.stopping = True
        for proc in self.children.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.children.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def cmd_up(args: argparse.Namespace) -> int:
    from framewise.broker import start_embedded_broker
    from framewise.kafka import ensure_topics

    settings = get_settings()
    env = dict(os.environ)
    broker = None
    if settings.embedded:
        broker = start_embedded_broker(settings.embedded_broker_port)
        env.setdefault("FRAMEWISE_FAST_GROUP_TIMEOUTS", "true")
        print(f"    broker | embedded Tansu on {settings.bootstrap} (memory only)", flush=True)
    asyncio.run(ensure_topics(settings))
    supervisor = Supervisor(env)
    me = [sys.executable, "-m", "framewise.cli"]
    for role in worker_roles(settings):
        supervisor.start(role, [*me, "worker", role])
    supervisor.start("api", [*me, "api"])
    print(
        f"       api | {settings.public_api_url}  (docs: {settings.public_api_url}/docs)",
        flush=True,
    )

    def shutdown(*_: object) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, shutdown)
    try:
        supervisor.watch()
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.stop()
        if broker is not None:
            broker.terminate()
    return 0


def summary_table(job, seconds: float):
    """A short table of what the job found (rich), for `framewise analyze`."""
    from rich.markup import escape
    from rich.table import Table

    from schemas.api import VideoJob

    def age(person) -> str:
        return "?" if person.age is None else f"{person.age:.0f}"

    table = Table(
        title=f"{job.job_id}: {job.status.value} in {seconds:.1f} s", title_justify="left"
    )
    if job.error is not None:
        table.add_column("error")
        table.add_row(f"{job.error.code.value}: {job.error.message}")
        return table
    if isinstance(job, VideoJob):
        r = job.result
        persons = {p.person_id: p for s in r.person_constellation_scenes for p in s.person_ids}
        table.add_column("what")
        table.add_column("found")
        table.add_row("duration", f"{r.metadata.duration_seconds:.1f} s" if r.metadata else "-")
        table.add_row("scenes", str(len(r.raw_scenes)))
        table.add_row(
            "persons",
            ", ".join(f"{p.person_id} ({p.gender}, {age(p)})" for p in persons.values()) or "-",
        )
        table.add_row(
            "texts",
            "\n".join(escape(f"{o.full_text} [{o.language_code}]") for o in r.ocr_results) or "-",
        )
        table.add_row("sections", escape(", ".join(s.section_tag for s in r.sections)) or "-")
        return table
    for column in ("image", "status", "tags", "persons", "text"):
        table.add_column(column)
    for item in job.items:
        r = item.result
        table.add_row(
            item.external_id,
            item.status.value
            if item.error is None
            else f"{item.status.value}: {item.error.message}",
            ", ".join(f"{t.tag} {t.probability:.0%}" for t in r.tags) if r else "",
            str(len(r.person_ids)) if r else "",
            " / ".join(o.full_text for o in r.ocr_results) if r else "",
        )
    return table


def cmd_analyze(args: argparse.Namespace) -> int:
    import webbrowser

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from framewise.client import ApiProblem, Client

    settings = get_settings()
    url = args.url or settings.public_api_url
    files = [Path(f) for f in args.files]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"no such file: {', '.join(missing)}")
    kinds = {(mimetypes.guess_type(f.name)[0] or "").split("/")[0] for f in files}
    if kinds != {"image"} and len(files) != 1:
        raise SystemExit("give one video, or only images")
    console = Console(stderr=True)
    key = settings.api_key.get_secret_value() if settings.api_key else None
    started = time.monotonic()
    with Client(url, api_key=key, timeout=600) as client:
        try:
            if kinds == {"image"}:
                job_id = client.submit_images(
                    files, webhook_url=args.webhook, max_processing_time=args.max_processing_time
                )
            else:
                job_id = client.submit_video(
                    files[0], webhook_url=args.webhook, max_processing_time=args.max_processing_time
                )
        except ApiProblem as exc:
            console.print(f"[red]refused[/red] {exc}")
            return 2
        console.print(f"submitted [bold]{job_id}[/bold]; viewer: {client.viewer_url(job_id)}")
        if args.open:
            webbrowser.open(client.viewer_url(job_id))
        columns = (
            TextColumn("{task.description:<11}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("queued", total=1.0)

            def show(job) -> None:
                done = 1.0 if job.status.terminal else job.progress or 0.0
                progress.update(task, completed=done, description=job.status.value)

            job = client.wait(job_id, on_update=show)
    if args.json:
        print(job.model_dump_json(indent=2, exclude_none=True))
    else:
        Console().print(summary_table(job, time.monotonic() - started))
    return 0 if job.status.value == "finished" else 1


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
