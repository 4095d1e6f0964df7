"""ThreadCoalescer: blocking callers in many threads share round trips."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from abe_redis._core.commands import Command, Pipeline, XAdd
from abe_redis._sync.pipelining import ThreadCoalescer
from abe_redis.errors import ConnectError


def add(n: int) -> XAdd:
    return XAdd("s", ((b"n", str(n).encode()),))


class Server:
    """Answers each XADD with its n; the first call waits until ``hold`` callers queued."""

    def __init__(self, hold: int = 0, error: Exception | None = None) -> None:
        self.sent: list[Command[Any]] = []
        self.hold = hold
        self.error = error
        self.coalescer = ThreadCoalescer(self.execute)

    def execute(self, cmd: Command[Any]) -> Any:
        if not self.sent:
            deadline = time.monotonic() + 5
            while len(self.coalescer._queue) < self.hold and time.monotonic() < deadline:
                time.sleep(0.001)
        self.sent.append(cmd)
        if self.error is not None:
            raise self.error
        subs = cmd.commands if isinstance(cmd, Pipeline) else (cmd,)
        replies = [int(dict(sub.fields)[b"n"]) for sub in subs if isinstance(sub, XAdd)]
        return replies if isinstance(cmd, Pipeline) else replies[0]


def run_threads(server: Server, count: int) -> list[Any]:
    results: list[Any] = [None] * count

    def call(n: int) -> None:
        try:
            results[n] = server.coalescer.execute(add(n))
        except Exception as exc:
            results[n] = exc

    first = threading.Thread(target=call, args=(0,))
    first.start()
    while not server.coalescer._flushing:
        time.sleep(0.001)
    threads = [threading.Thread(target=call, args=(n,)) for n in range(1, count)]
    for t in threads:
        t.start()
    for t in (first, *threads):
        t.join(10)
    return results


def test_a_lone_caller_sends_its_own_command() -> None:
    server = Server()
    assert server.coalescer.execute(add(7)) == 7
    assert server.sent == [add(7)]


def test_threads_queued_behind_a_round_trip_share_the_next_one() -> None:
    server = Server(hold=9)
    results = run_threads(server, 10)
    assert results == list(range(10))  # everyone got their own answer
    assert len(server.sent) == 2  # the first alone, the nine others together
    assert isinstance(server.sent[1], Pipeline)
    assert len(server.sent[1].commands) == 9


def test_an_error_reaches_every_thread_of_the_batch() -> None:
    server = Server(hold=4, error=ConnectError("Redis went away"))
    results = run_threads(server, 5)
    assert all(isinstance(r, ConnectError) for r in results)
    assert len(server.sent) == 2


def test_multi_pipelines_go_alone() -> None:
    server = Server()
    multi = Pipeline((add(1), add(2)), transaction=True)
    assert server.coalescer.execute(multi) == [1, 2]
    assert server.sent == [multi]


@pytest.mark.parametrize("count", [1, 50])
def test_results_stay_in_order_under_load(count: int) -> None:
    server = Server()
    results: list[Any] = []
    lock = threading.Lock()

    def call(n: int) -> None:
        for i in range(20):
            got = server.coalescer.execute(add(n * 100 + i))
            with lock:
                results.append((n, i, got))

    threads = [threading.Thread(target=call, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 20 * count
    assert all(got == n * 100 + i for n, i, got in results)
