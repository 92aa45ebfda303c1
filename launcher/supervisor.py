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

from framewise.config import get_settings
from launcher.roles import worker_roles


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
    me = [sys.executable, "-m", "launcher.cli"]
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
