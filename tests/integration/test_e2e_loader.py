"""End to end through the real abstract-backend loader (Python 3.12+ only)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from abe.backends.message_queue.loader import load_backend
from abe.types import MessageQueueBackendProtocol

from abe_redis import RedisMessageQueueBackend

pytestmark = [pytest.mark.integration]
Names = Callable[[str], str]
WORKER = Path(__file__).with_name("host_worker.py")


@pytest.fixture
def host_env(redis_url: str, names: Names, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "QUEUE_BACKEND": "redis",
        "REDIS_URL": redis_url,
        "REDIS_STREAM_REGISTRY": names("streams"),
        "REDIS_CONSUMER_GROUP": names("group"),
        "REDIS_CLAIM_MIN_IDLE_MS": "500",
        "REDIS_BLOCK_MS": "200",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_loader_picks_us_and_events_before_consumers_arrive(
    host_env: dict[str, str], names: Names
) -> None:
    backend = load_backend()
    assert isinstance(backend, RedisMessageQueueBackend)
    assert isinstance(backend, MessageQueueBackendProtocol)
    stream = names("slack_events")
    async with backend:
        for i in range(50):
            await backend.publish(stream, {"type": "event_callback", "i": i})
        await backend.publish("_health_check", {"status": "ok"})
        got = []
        with anyio.fail_after(10):
            async for event in backend.consume():
                got.append(event)
                if len(got) == 50:
                    break
        assert [e["i"] for e in got] == list(range(50))


class Worker:
    """A host worker process whose handled events are collected from stdout."""

    def __init__(self, env: dict[str, str]) -> None:
        self.handled: list[int] = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            text=True,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("ready"):
                self.ready.set()
            elif line.strip().isdigit():
                self.handled.append(int(line))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=10)
        self.thread.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def workers(host_env: dict[str, str]) -> Iterator[Callable[[], Worker]]:
    started: list[Worker] = []

    def start() -> Worker:
        started.append(Worker(host_env))
        assert started[-1].ready.wait(20), "worker did not start"
        return started[-1]

    yield start
    for worker in started:
        worker.stop(signal.SIGKILL)


def test_a_worker_killed_mid_stream_loses_nothing(
    host_env: dict[str, str], names: Names, workers: Callable[[], Worker]
) -> None:
    total = 600
    first, second = workers(), workers()
    stream = names("slack_events")

    async def publish() -> None:
        async with RedisMessageQueueBackend.from_env() as backend:
            for i in range(total):
                await backend.publish(stream, {"i": i})

    anyio.run(publish)
    # Kill whichever worker is first to have handled 60 events: it is
    # mid-stream, holding prefetched and unacknowledged entries.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        busy = [w for w in (first, second) if len(w.handled) >= 60]
        if busy:
            break
        time.sleep(0.002)
    assert busy, "no worker handled 60 events within 20 s"
    victim = busy[0]
    survivor = second if victim is first else first
    victim.stop(signal.SIGKILL)
    killed_after = len(victim.handled)
    deadline = time.monotonic() + 30
    while len(set(first.handled) | set(second.handled)) < total and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = Counter(first.handled + second.handled)
    lost = total - len(seen)
    duplicates = sum(c - 1 for c in seen.values())
    print(
        f"\n{total} events; a worker was killed by SIGKILL after handling {killed_after}; "
        f"the survivor handled {len(survivor.handled)}; lost {lost}; duplicates {duplicates}"
    )
    assert lost == 0
    # Duplicates only for entries the killed worker handled but had not acked yet.
    assert duplicates <= int(host_env.get("REDIS_PREFETCH", "64")) + 1
