"""The fault suite: every scenario on its own redis-server, with its figures printed.

Each scenario is bounded (well under a minute on a 2-core machine) and
asserts the promise it is about: nothing lost, duplicates only where a
worker died before acknowledging, bad input refused or dead-lettered.
"""

from __future__ import annotations

import datetime
import math
import random
import subprocess
import time
from collections import Counter
from typing import Any

import anyio
import pytest
import redis

from abe_redis import (
    PayloadError,
    RedisMessageQueueBackend,
    Settings,
    StreamKeyError,
    SyncRedisQueue,
)
from abe_redis.embedded import RedisServer

from ..helpers import admin
from .conftest import Report, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_workers_sigkilled_at_random_lose_nothing(server: RedisServer, report: Report) -> None:
    total = 3000
    env = {
        "REDIS_URL": server.url,
        "REDIS_CLAIM_MIN_IDLE_MS": "1000",
        "REDIS_BLOCK_MS": "200",
        "REDIS_PREFETCH": "16",
        "REDIS_CONSUMER_GROUP": "workers",
    }
    with SyncRedisQueue(Settings(url=server.url)) as queue:
        for i in range(total):
            queue.publish("events", {"i": i})
    rng = random.Random(20261123)
    # Kills are tied to progress, not to the clock: a fast machine must not
    # finish the 3000 events before the kills happen. Four kills at distinct
    # tenths between 10 % and 80 % handled, so each lands mid-stream.
    kill_at = [total * tenth // 10 for tenth in sorted(rng.sample(range(1, 9), 4))]
    workers = [WorkerProcess(env) for _ in range(3)]
    for worker in workers:
        assert worker.ready.wait(20), "worker did not start"
    live = list(workers)
    kills = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < 60:
            handled = {i for w in workers for i in w.handled}
            if len(handled) >= total:
                break
            ready = [w for w in live if w.ready.is_set()]
            if kills < len(kill_at) and len(handled) >= kill_at[kills] and ready:
                victim = rng.choice(ready)
                victim.kill()
                live.remove(victim)
                kills += 1
                fresh = WorkerProcess(env)
                workers.append(fresh)
                live.append(fresh)
            time.sleep(0.005)
    finally:
        for worker in workers:
            worker.finish()
    seen = Counter(i for w in workers for i in w.handled)
    lost = total - len(seen)
    duplicates = sum(c - 1 for c in seen.values())
    by_killed = {i for w in workers if w.killed for i in w.handled}
    unexplained = sorted(i for i, c in seen.items() if c > 1 and i not in by_killed)
    report(
        f"SIGKILL: {total} events, 3 workers, {kills} killed at random points "
        f"in {time.monotonic() - started:.1f} s: lost {lost}, duplicates {duplicates} "
        f"(all of entries a killed worker handled before acking: {not unexplained})"
    )
    assert kills == len(kill_at)
    assert lost == 0
    assert unexplained == []


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_failing_handlers_retry_then_dead_letter(server: RedisServer, report: Report) -> None:
    settings = Settings(
        url=server.url, max_deliveries=3, retry_base=0.02, retry_cap=0.1, block_ms=100
    )
    total = 300
    poison = {i for i in range(total) if i % 50 == 0}
    flaky = {i for i in range(total) if i % 5 == 0} - poison
    attempts: Counter[int] = Counter()
    done: set[int] = set()
    async with RedisMessageQueueBackend(settings) as backend:
        for i in range(total):
            await backend.publish("events", {"i": i})
        with anyio.fail_after(45):
            async with backend.deliveries() as deliveries:
                async for delivery in deliveries:
                    i = delivery.payload["i"]
                    attempts[i] += 1
                    if i in poison:
                        await delivery.nack(error=RuntimeError(f"poison {i}"))
                    elif i in flaky and attempts[i] == 1:
                        await delivery.nack(error=TimeoutError("flaky"))
                    else:
                        await delivery.ack()
                        done.add(i)
                    if len(done) == total - len(poison) and all(attempts[p] == 3 for p in poison):
                        break
        dead = await backend.dead_letters("events")
        pending = (await backend.pending("events")).count
    report(
        f"handler failures: {len(flaky)} failed once and were processed on retry; "
        f"{len(poison)} failed every time and were dead-lettered after "
        f"{sorted({d.deliveries for d in dead})} deliveries; pending after close {pending}"
    )
    assert done == set(range(total)) - poison
    assert all(attempts[i] == 2 for i in flaky)
    assert sorted(d.payload["i"] for d in dead if d.payload) == sorted(poison)
    assert {d.deliveries for d in dead} == {3}
    assert all(d.error and d.error.startswith("RuntimeError: poison") for d in dead)
    assert pending == 0


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_redis_restart_and_client_kills_lose_nothing(
    server: RedisServer, report: Report
) -> None:
    settings = Settings(
        url=server.url,
        block_ms=200,
        socket_timeout=1,
        claim_min_idle_ms=3000,
        publish_retry_seconds=15,
    )
    total = 1200
    published: set[int] = set()
    consumed: Counter[int] = Counter()
    consumed_at: list[float] = []
    restarted: list[float] = []
    kills = 0
    publishing_done = anyio.Event()

    def kill_clients() -> int:
        try:
            with admin(server.url, socket_timeout=1) as client:
                return int(client.client_kill_filter(_type="normal", skipme=True))
        except redis.RedisError:
            return 0  # the server is down right now

    async with RedisMessageQueueBackend(settings) as backend:
        await backend.ping()
        await backend.publish_entry("events", {"i": -1})  # reach Redis once

        async def publisher() -> None:
            for i in range(total):
                # The idempotency key makes retried publishes safe.
                await backend.publish_entry("events", {"i": i}, idempotency_key=f"e{i}")
                published.add(i)
                await anyio.sleep(0.002)
            publishing_done.set()
            # Wake the consumer if it already has everything.
            await backend.publish_entry("events", {"i": -2})

        async def consumer() -> None:
            async with backend.consume() as events:
                async for event in events:
                    consumed[event["i"]] += 1
                    consumed_at.append(time.monotonic())
                    if publishing_done.is_set() and published <= set(consumed):
                        return

        async def chaos() -> None:
            nonlocal kills
            await anyio.sleep(0.8)
            await anyio.to_thread.run_sync(server.stop)
            await anyio.sleep(1.0)
            await anyio.to_thread.run_sync(server.start)
            restarted.append(time.monotonic())
            while not publishing_done.is_set() or not published <= set(consumed):
                kills += await anyio.to_thread.run_sync(kill_clients)
                await anyio.sleep(1.0)

        with anyio.fail_after(55):
            async with anyio.create_task_group() as tg:
                tg.start_soon(publisher)
                tg.start_soon(chaos)
                await consumer()
                tg.cancel_scope.cancel()
    after = [t for t in consumed_at if t >= restarted[0]]
    recovery = after[0] - restarted[0] if after else math.inf
    lost = published - set(consumed)
    duplicates = sum(c - 1 for c in consumed.values())
    report(
        f"restart + CLIENT KILL: {len(published)} published, lost {len(lost)}, "
        f"duplicates {duplicates}, {kills} connections killed; first event consumed "
        f"{recovery:.2f} s after the restart"
    )
    assert len(published) == total
    assert lost == set()
    assert recovery < 10


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_slow_group_keeps_every_event_while_streams_are_trimmed(
    server: RedisServer, report: Report
) -> None:
    total = 30_000
    settings = Settings(url=server.url, prefetch=500, block_ms=100)
    async with RedisMessageQueueBackend(settings) as backend:
        await backend.publish("events", {"i": -1})
        # Both groups exist before the burst, as in a deployment.
        async with backend.consume(group="fast") as f, backend.consume(group="slow") as s:
            await f.__anext__()
            await s.__anext__()

        async def publish_part(start: int) -> None:
            for i in range(start, total, 20):
                await backend.publish("events", {"i": i})

        with anyio.fail_after(50):
            async with anyio.create_task_group() as tg:
                for start in range(20):
                    tg.start_soon(publish_part, start)
            fast: set[int] = set()
            async with backend.consume(group="fast") as events:
                async for event in events:
                    fast.add(event["i"])
                    if len(fast) == total:
                        break
            await backend.trim("events")
            length_while_slow_waits = await backend.stream_length("events")
            slow: set[int] = set()
            async with backend.consume(group="slow") as events:
                async for event in events:
                    slow.add(event["i"])
                    if len(slow) % 5000 == 0:
                        await backend.trim("events")  # trimming behind the slow group
                    if len(slow) == total:
                        break
        await backend.trim("events")
        final_length = await backend.stream_length("events")
    report(
        f"slow vs fast group, {total} events: fast got {len(fast)}, slow got {len(slow)} "
        f"(lost {total - len(slow)}); stream length while the slow group waited "
        f"{length_while_slow_waits}, after both finished and a trim {final_length}"
    )
    assert slow == set(range(total))
    assert length_while_slow_waits >= total
    assert final_length < 1000


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_bad_input_is_refused_and_foreign_entries_dead_lettered(
    server: RedisServer, report: Report
) -> None:
    settings = Settings(url=server.url, block_ms=100, registry_key="app:streams")
    deep: Any = "leaf"
    for _ in range(100):
        deep = {"d": deep}
    bad_payloads: list[Any] = [
        {"s": {1, 2}},
        {"b": b"bytes"},
        {"t": datetime.datetime(2026, 11, 23)},
        {"n": float("nan")},
        {"big": "x" * 2_000_000},
        deep,
        ["not", "an", "object"],
    ]
    bad_keys: list[Any] = ["", None, 42, "with space", "x" * 300]
    refused = 0
    async with RedisMessageQueueBackend(settings) as backend:
        for payload in bad_payloads:
            with pytest.raises(PayloadError):
                await backend.publish("events", payload)
            refused += 1
        for key in bad_keys:
            with pytest.raises(StreamKeyError):
                await backend.publish(key, {"ok": True})
            refused += 1
        with admin(server.url) as raw:
            assert raw.exists("events", "app:streams") == 0  # nothing was written

        await backend.publish("events", {"n": 1})
        cli = ["redis-cli", "-p", str(server.port)]
        subprocess.run([*cli, "XADD", "events", "*", "wrong", "field"], check=True)
        subprocess.run([*cli, "XADD", "events", "*", "data", "{not json"], check=True)
        subprocess.run(
            [*cli, "-x", "XADD", "events", "*", "data"], input=b"\x80\x81\xfe", check=True
        )
        await backend.publish("events", {"n": 2})
        async with backend.consume() as events:
            with anyio.fail_after(10):
                got = [await events.__anext__(), await events.__anext__()]
        dead = await backend.dead_letters("events")
        pending = (await backend.pending("events")).count
    report(
        f"bad input: {refused} bad publishes refused with typed errors, nothing written; "
        f"{len(dead)} foreign entries dead-lettered ({'; '.join(d.reason[:40] for d in dead)}); "
        f"consumer went on: {got}"
    )
    assert got == [{"n": 1}, {"n": 2}]
    assert len(dead) == 3
    assert pending == 0
