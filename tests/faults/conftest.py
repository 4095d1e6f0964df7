"""Fault-suite fixtures: private redis-servers, worker processes, a report line."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from abe_redis.embedded import RedisServer

from ..helpers import reporter

WORKER = Path(__file__).with_name("worker.py")
Report = Callable[[str], None]


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A private redis-server with AOF on, stopped by PID afterwards."""
    with RedisServer(appendonly=True) as srv:
        yield srv


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Report:
    """Print a figure into the test output even when output is captured."""
    return reporter(capsys, "faults")


class WorkerProcess:
    """One worker process; ``handled`` fills from its stdout."""

    def __init__(self, env: dict[str, str]) -> None:
        self.handled: list[int] = []
        self.handled_at: dict[int, float] = {}  # first time each was handled
        self.ready = threading.Event()
        self.killed = False
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("ready"):
                self.ready.set()
            elif line.startswith("H "):
                i = int(line[2:])
                self.handled.append(i)
                self.handled_at.setdefault(i, time.monotonic())

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def peak_rss_mb(self) -> float:
        """The process's peak resident memory so far (VmHWM), in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def kill(self) -> None:
        self.killed = True
        self.proc.kill()
        self.proc.wait(timeout=10)

    def finish(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
