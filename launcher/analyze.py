"""``framewise analyze``: submit media with the client, show progress, summarise the result."""

from __future__ import annotations

import argparse
import mimetypes
import time
from pathlib import Path

from framewise.config import get_settings


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

    from ingest_api.client import ApiProblem, Client

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
