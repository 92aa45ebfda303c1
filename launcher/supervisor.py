"""``framewise up``: the embedded broker (unless a cluster is configured), every worker and the
API as child processes, each restarted when it dies."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from framewise.blobstore import BlobStore
from framewise.broker import start_embedded_broker
from framewise.config import Settings, get_settings
from framewise.journal import Journal, replay
from framewise.kafka import ensure_topics
from launcher.roles import worker_roles

STOP_GRACE_S = 10.0


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

    def watch(self, check: Callable[[], None] = lambda: None) -> None:
        """Restart children that die; ``check`` runs every second too (the broker's watch)."""
        while not self.stopping:
            check()
            for role, proc in list(self.children.items()):
                if proc.poll() is not None and not self.stopping:
                    print(f"{role:>10} | exited with {proc.returncode}; restarting", flush=True)
                    self.start(role, self.commands[role])
            time.sleep(1.0)

    def start_all(self) -> None:
        """Every child anew, each with the command it was first started with."""
        for role, command in list(self.commands.items()):
            self.start(role, command)

    def stop(self) -> None:
        self.stopping = True
        self.terminate()

    def terminate(self) -> None:
        """SIGTERM to every child, then SIGKILL to those still there after one shared grace
        period (not one per child: workers stuck on a dead broker would add up)."""
        for proc in self.children.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.children.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def prepare_broker(settings: Settings) -> None:
    """Topics, then (embedded broker: it starts empty) the journal replayed into it."""
    asyncio.run(ensure_topics(settings))
    journal = Journal.of(settings)
    if journal is not None:
        jobs, resumed, identities = asyncio.run(
            replay(journal, settings, BlobStore(settings.data_dir))
        )
        print(
            f"   journal | replayed {jobs} jobs ({resumed} resumed) and {identities} "
            "allowlist identities",
            flush=True,
        )


def cmd_up(args: argparse.Namespace) -> int:
    settings = get_settings()
    env = dict(os.environ)
    # glibc gives each thread that allocates its own heap; the workers' analysis threads then
    # grow memory with the number of batches seen (the scene worker 1.17x from a 72 s to a
    # 10 min video), where two heaps keep it flat (1.00x).
    env.setdefault("MALLOC_ARENA_MAX", "2")
    broker = None
    if settings.embedded:
        broker = start_embedded_broker(settings.embedded_broker_port)
        env.setdefault("FRAMEWISE_FAST_GROUP_TIMEOUTS", "true")
        print(f"    broker | embedded Tansu on {settings.bootstrap} (memory only)", flush=True)
    prepare_broker(settings)
    supervisor = Supervisor(env)
    me = [sys.executable, "-m", "launcher.cli"]
    for role in worker_roles(settings):
        copies = settings.decode_workers if role == "decode" else 1
        for copy in range(copies):
            supervisor.start(f"{role}-{copy + 1}" if copy else role, [*me, "worker", role])
    supervisor.start("api", [*me, "api"])
    print(
        f"       api | {settings.public_api_url}  (docs: {settings.public_api_url}/docs)",
        flush=True,
    )

    def watch_broker() -> None:
        """An embedded broker that died is started again, refilled from the journal, and
        every process starts anew on it. The processes stop first: none may reach the new,
        empty broker before the journal refills it (a worker would join its groups, the API
        would answer 200 on ``/healthz`` and then go away)."""
        nonlocal broker
        if broker is None or broker.poll() is None or supervisor.stopping:
            return
        print(f"    broker | exited with {broker.returncode}; restarting", flush=True)
        supervisor.terminate()
        broker = start_embedded_broker(settings.embedded_broker_port)
        prepare_broker(settings)
        supervisor.start_all()

    def shutdown(*_: object) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, shutdown)
    try:
        supervisor.watch(watch_broker)
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.stop()
        if broker is not None:
            broker.terminate()
    return 0
