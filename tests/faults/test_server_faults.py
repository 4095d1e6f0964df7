"""Faults of the server itself: lost data, full memory, stalls, a half-open
network, and hostile entries. Every scenario runs its own redis-server and
prints what was lost, duplicated, and how long recovery took."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import anyio
import pytest

from abe_redis import (
    OutOfMemory,
    RedisMessageQueueBackend,
    Settings,
    SyncRedisQueue,
    TransportError,
)
from abe_redis.embedded import RedisServer

from ..helpers import admin
from .conftest import Report, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def wait_for(condition: Callable[[], object], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def handled(workers: list[WorkerProcess]) -> Counter[int]:
    return Counter(i for w in workers for i in w.handled)


def test_flush_and_stream_deletion_mid_stream_keep_workers_alive(report: Report) -> None:
    with RedisServer() as server:
        env = {
            "REDIS_URL": server.url,
            "REDIS_BLOCK_MS": "500",
            "REDIS_CLAIM_MIN_IDLE_MS": "2000",
            "REDIS_SOCKET_TIMEOUT": "2",
            "REDIS_CONSUMER_GROUP": "workers",
        }
        workers = [WorkerProcess(env) for _ in range(3)]
        late: WorkerProcess | None = None
        try:
            for w in workers:
                assert w.ready.wait(20), "worker did not start"
            phases: dict[str, range] = {
                "before the flush": range(0, 1000),
                "after the flush": range(1000, 2000),
                "after the deletion": range(2000, 3000),
            }
            faults: dict[str, float] = {}
            with SyncRedisQueue(Settings(url=server.url)) as queue, admin(server.url) as raw:
                for name, events in phases.items():
                    if name == "after the flush":
                        # Mid-stream: the workers are busy with the first 1000.
                        assert wait_for(lambda: len(handled(workers)) >= 200, 20)
                        raw.flushall()
                        faults[name] = time.monotonic()
                    elif name == "after the deletion":
                        # A worker in a new group, started after the flush,
                        # finds the stream (the registry healed) ...
                        newcomer = WorkerProcess({**env, "REDIS_CONSUMER_GROUP": "late"})
                        late = newcomer
                        assert newcomer.ready.wait(20)
                        assert wait_for(lambda: newcomer.handled, 10)  # noqa: B023
                        raw.delete("events")
                        faults[name] = time.monotonic()
                    for i in events:
                        queue.publish("events", {"i": i})
                        time.sleep(0.001)
                    if name != "before the flush":
                        # ... and everything published after a fault is processed.
                        wanted = set(events)
                        assert wait_for(lambda: wanted <= set(handled(workers)), 30), (  # noqa: B023
                            f"{len(wanted - set(handled(workers)))} events {name} never processed"
                        )
            assert late is not None
            assert wait_for(lambda: set(phases["after the deletion"]) <= set(late.handled), 30)
            seen = handled(workers)
            lost_by_flush = len(set(phases["before the flush"]) - set(seen))
            recovery = {
                name: min(w.handled_at.get(phases[name][0], 1e18) for w in workers) - at
                for name, at in faults.items()
            }
            alive = [w.alive for w in [*workers, late]]
            report(
                f"FLUSHALL, then DEL of the stream, mid-stream, 3 workers: "
                f"{lost_by_flush} of 1000 events published before the flush were gone with "
                f"it; 0 of 2000 published after a fault lost; duplicates "
                f"{sum(c - 1 for c in seen.values())}; first event after the flush handled "
                f"{recovery['after the flush']:.2f} s after it, after the deletion "
                f"{recovery['after the deletion']:.2f} s; a worker in a new group started "
                f"after the flush processed {len(set(late.handled))} events; workers alive: "
                f"{sum(alive)} of {len(alive)}"
            )
            assert all(alive)
        finally:
            for w in [*workers, *([late] if late is not None else [])]:
                w.finish()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_out_of_memory_refuses_at_once_then_a_drained_queue_accepts_again(
    report: Report,
) -> None:
    payload = {"blob": "x" * 1000}
    with RedisServer(extra=("--maxmemory", "30mb", "--maxmemory-policy", "noeviction")) as server:
        settings = Settings(url=server.url, block_ms=100, prefetch=500)
        async with RedisMessageQueueBackend(settings) as backend:
            await backend.publish("events", {"n": -1})
            for group in ("fast", "slow"):  # both groups exist before the burst
                async with backend.consume(group=group) as consumer:
                    await consumer.__anext__()
            written = 0
            started = time.monotonic()
            refused_in = 0.0
            while True:
                at = time.monotonic()
                try:
                    await backend.publish("events", payload)
                except OutOfMemory:
                    refused_in = time.monotonic() - at
                    break
                written += 1
                assert time.monotonic() - started < 60, "never ran out of memory"

            async def drain(group: str) -> int:
                got = 0
                async with backend.consume(group=group) as events:
                    with anyio.fail_after(60):
                        async for _ in events:
                            got += 1
                            if got == written:
                                break
                return got

            fast = await drain("fast")
            length_before = await backend.stream_length("events")
            # The slow group has not read anything: no trim may take its entries.
            with pytest.raises(OutOfMemory):
                await backend.publish("events", payload)
            kept = await backend.stream_length("events")
            slow = await drain("slow")
            drained_at = time.monotonic()
            # Both groups are done: the next publish trims and goes through, no operator.
            with anyio.fail_after(10):
                while True:
                    try:
                        await backend.publish("events", payload)
                        break
                    except OutOfMemory:
                        await anyio.sleep(0.1)
            accepted_after = time.monotonic() - drained_at
            length_after = await backend.stream_length("events")
    report(
        f"maxmemory 30mb, noeviction: {written} publishes written, then OutOfMemory in "
        f"{refused_in * 1000:.0f} ms; fast group got {fast}, slow got {slow} (lost "
        f"{2 * written - fast - slow}); while the slow group lagged the stream kept "
        f"{kept} of {length_before} entries; once both were done a publish went "
        f"through {accepted_after:.2f} s later, the stream trimmed to {length_after}"
    )
    assert fast == slow == written
    assert refused_in < 1.0
    assert kept == length_before
    assert length_after < written // 2


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_server_stalls_lose_nothing_and_publish_calls_stay_in_budget(
    report: Report,
) -> None:
    with RedisServer(extra=("--enable-debug-command", "yes")) as server:
        settings = Settings(url=server.url, block_ms=200, socket_timeout=1, publish_retry_seconds=4)
        published: list[int] = []
        failed: list[int] = []
        longest = 0.0
        consumed: Counter[int] = Counter()
        done = anyio.Event()
        async with RedisMessageQueueBackend(settings) as backend:
            await backend.publish("events", {"i": -1})

            async def publisher() -> None:
                nonlocal longest
                for i in range(2000):
                    at = time.monotonic()
                    try:
                        await backend.publish("events", {"i": i})
                        published.append(i)
                    except TransportError:
                        failed.append(i)
                    longest = max(longest, time.monotonic() - at)
                    await anyio.sleep(0.003)
                done.set()
                await backend.publish("events", {"i": -2})  # wakes a consumer with it all

            def stall_twice() -> None:
                with admin(server.url, socket_timeout=10) as raw:
                    raw.execute_command("DEBUG", "SLEEP", "3")  # type: ignore[no-untyped-call]
                    time.sleep(1.0)
                    raw.client_pause(2500)

            async def stalls() -> None:
                await anyio.sleep(1.0)
                await anyio.to_thread.run_sync(stall_twice)

            async def consumer() -> None:
                async with backend.consume() as events:
                    async for event in events:
                        consumed[event["i"]] += 1
                        if done.is_set() and set(published) <= set(consumed):
                            return

            with anyio.fail_after(90):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(publisher)
                    tg.start_soon(stalls)
                    await consumer()
                    tg.cancel_scope.cancel()
    lost = set(published) - set(consumed)
    dup = sum(c - 1 for c in consumed.values())
    report(
        f"DEBUG SLEEP 3 and CLIENT PAUSE 2500 ALL during traffic: {len(published)} "
        f"published, {len(failed)} raised after the 4 s budget, lost {len(lost)}, "
        f"duplicates {dup} (a retried publish whose first reply was lost, or one that raised "
        f"and was written: {len(set(consumed) - set(published) - {-1, -2})}); longest publish "
        f"call {longest:.2f} s"
    )
    assert lost == set()
    assert longest < 4.0 + 1.0  # the budget, plus at most one socket timeout


class HalfOpenProxy:
    """A loopback TCP proxy that can stop forwarding without closing anything."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.forwarding = threading.Event()
        self.forwarding.set()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    s.close()
                return
            self.forwarding.wait()  # partitioned: hold it, close nothing
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for s in self.sockets:
            s.close()


@pytest.fixture
def proxied() -> Iterator[tuple[RedisServer, HalfOpenProxy]]:
    with RedisServer() as server:
        proxy = HalfOpenProxy(server.port)
        try:
            yield server, proxy
        finally:
            proxy.close()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_half_open_partition_heals_without_a_restart(
    proxied: tuple[RedisServer, HalfOpenProxy], report: Report
) -> None:
    _, proxy = proxied
    settings = Settings(
        url=f"redis://127.0.0.1:{proxy.port}/0",
        block_ms=200,
        socket_timeout=1,
        publish_retry_seconds=3,
    )
    published: list[int] = []
    consumed: Counter[int] = Counter()
    healed_at: list[float] = []
    first_after: list[float] = []
    done = anyio.Event()
    async with RedisMessageQueueBackend(settings) as backend:
        await backend.publish("events", {"i": -1})

        async def publisher() -> None:
            for i in range(1500):
                try:
                    await backend.publish("events", {"i": i})
                    published.append(i)
                except TransportError:
                    pass  # the budget ran out during the partition
                await anyio.sleep(0.004)
            done.set()
            await backend.publish("events", {"i": -2})  # wakes a consumer with it all

        async def partition() -> None:
            await anyio.sleep(1.0)
            proxy.forwarding.clear()
            await anyio.sleep(5.0)
            proxy.forwarding.set()
            healed_at.append(time.monotonic())

        async def consumer() -> None:
            async with backend.consume() as events:
                async for event in events:
                    consumed[event["i"]] += 1
                    if healed_at and not first_after:
                        first_after.append(time.monotonic())
                    if done.is_set() and set(published) <= set(consumed):
                        return

        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                tg.start_soon(publisher)
                tg.start_soon(partition)
                await consumer()
                tg.cancel_scope.cancel()
    lost = set(published) - set(consumed)
    recovery = first_after[0] - healed_at[0]
    report(
        f"5 s half-open partition (a proxy forwarding nothing, closing nothing): "
        f"{len(published)} published, lost {len(lost)}, duplicates "
        f"{sum(c - 1 for c in consumed.values())}; the worker handled an event "
        f"{recovery:.2f} s after the network healed"
    )
    assert lost == set()
    assert recovery < 5.0


def test_hostile_entries_are_dead_lettered_and_memory_stays_bounded(report: Report) -> None:
    with RedisServer() as server:
        env = {"REDIS_URL": server.url, "REDIS_BLOCK_MS": "200", "REDIS_PREFETCH": "16"}
        cli = ["redis-cli", "-p", str(server.port)]
        with SyncRedisQueue(Settings(url=server.url)) as queue:
            queue.publish("events", {"i": 0})
            huge = b'{"blob":"' + b"x" * 20_000_000 + b'"}'
            deep = b'{"d":' * 10_000 + b"1" + b"}" * 10_000
            garbage = bytes([0x80, 0xFE]) * 2_500_000
            for data in (huge, deep, garbage):
                subprocess.run([*cli, "-x", "XADD", "events", "*", "data"], input=data, check=True)
            for i in range(1, 101):
                queue.publish("events", {"i": i})  # canaries
            worker = WorkerProcess(env)
            try:
                assert worker.ready.wait(20)
                assert wait_for(lambda: set(range(101)) <= set(worker.handled), 60)
                peak = worker.peak_rss_mb()
                alive = worker.alive
            finally:
                worker.finish()
            dead = queue.dead_letters("events")
    report(
        f"hostile entries (20 MB valid JSON, JSON nested 10,000 deep, 5 MB invalid UTF-8): "
        f"{len(dead)} dead-lettered ({'; '.join(d.reason[:50] for d in dead)}); 101 canaries "
        f"processed; worker peak RSS {peak:.0f} MB"
    )
    assert alive
    assert len(dead) == 3
    assert peak < 250
