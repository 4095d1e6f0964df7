"""Auto-pipelining: concurrent publishes share round trips, each keeps its own result."""

from __future__ import annotations

import threading

import anyio
import pytest
import redis

from abe_redis import PayloadError, SyncRedisQueue, TransportError
from abe_redis._core.commands import Ping, XLen
from abe_redis._core.steps import Batch, once, run_batch
from abe_redis._io.coalescer import Coalescer
from abe_redis._io.driver import run_flow

from .conftest import BackendFactory

pytestmark = pytest.mark.anyio


async def test_concurrent_publishes_each_get_their_id(
    make_backend: BackendFactory, raw: redis.Redis
) -> None:
    backend = make_backend()
    await backend.publish("s", {"warm": True})
    ids: list[str] = []

    async def publish(i: int) -> None:
        ids.append(await backend.publish_entry("s", {"i": i}))

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(publish, i)
    assert len(set(ids)) == 200
    assert raw.xlen("s") == 201
    # 200 concurrent publishes shared round trips on one connection.
    assert backend._pipelined().round_trips < 50


async def test_each_caller_gets_its_own_error(make_backend: BackendFactory) -> None:
    backend = make_backend()
    results: list[object] = []

    async def publish(payload: object) -> None:
        try:
            results.append(await backend.publish_entry("s", payload))  # type: ignore[arg-type]
        except PayloadError as exc:
            results.append(exc)

    async with anyio.create_task_group() as tg:
        for payload in ({"ok": 1}, {"bad": {1}}, {"ok": 2}):
            tg.start_soon(publish, payload)
    assert sum(isinstance(r, PayloadError) for r in results) == 1
    assert sum(isinstance(r, str) for r in results) == 2


async def test_a_failed_round_trip_reaches_every_caller_in_it() -> None:
    class Broken:
        target = "nowhere"

        async def execute(self, cmd: object) -> object:
            await anyio.sleep(0)
            raise TransportError("connection reset")

    coalescer = Coalescer(Broken())
    errors: list[Exception] = []

    async def ask() -> None:
        try:
            await run_flow(once(Ping()), coalescer)
        except TransportError as exc:
            errors.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(ask)
    assert len(errors) == 10


async def test_pipelines_of_callers_are_flattened_and_split_back(
    make_backend: BackendFactory,
) -> None:
    backend = make_backend()
    coalescer = backend._pipelined()
    await backend.publish("s", {"n": 1})
    results: list[object] = []

    async def run_pipe() -> None:
        value = await run_flow(run_batch(Batch((XLen("s"), Ping()))), coalescer)
        results.append(value)

    async def run_one() -> None:
        value = await run_flow(once(XLen("s")), coalescer)
        results.append(value)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_pipe)
        tg.start_soon(run_one)
        tg.start_soon(run_pipe)
    assert sorted(map(repr, results)) == sorted(map(repr, [(1, True), 1, (1, True)]))


async def test_publish_many(make_backend: BackendFactory, raw: redis.Redis) -> None:
    backend = make_backend()
    ids = await backend.publish_many("s", [{"i": i} for i in range(2500)])
    assert len(set(ids)) == 2500
    assert raw.xlen("s") == 2500
    with pytest.raises(PayloadError):
        await backend.publish_many("s", [{"i": 1}, {"bad": float("nan")}])
    assert raw.xlen("s") == 2500


def test_many_threads_publish_through_one_queue(sync_queue: SyncRedisQueue) -> None:
    def work() -> None:
        for i in range(25):
            sync_queue.publish("jobs", {"i": i})

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sync_queue.stream_length("jobs") == 400
    assert sync_queue.publish_many("jobs", [{"x": 1}] * 3)[0] != ""
