"""Delivery behaviour against a real redis-server, on asyncio and trio."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import redis

from abe_redis import (
    AccessDenied,
    ConnectError,
    PayloadError,
    RedisMessageQueueBackend,
    Settings,
    StreamKeyError,
    SyncRedisQueue,
)
from abe_redis._core.deadletters import dead_letter_stream
from abe_redis.embedded import RedisServer, free_port

from ..helpers import only_pool, take

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
Names = Callable[[str], str]


@pytest.mark.parametrize("protocol", [2, 3])
async def test_roundtrip_in_resp2_and_resp3(
    settings: Settings, names: Names, protocol: int
) -> None:
    stream = names("events")
    async with RedisMessageQueueBackend(dataclasses.replace(settings, protocol=protocol)) as b:
        payload = {"type": "message", "text": "héllo", "n": [1, 2.5, None, True]}
        await b.publish(stream, payload)
        async with b.consume() as consumer:
            assert await take(consumer, 1) == [payload]
        assert (await b.pending(stream)).count == 0
        (group,) = await b.groups(stream)
        assert group.name == settings.consumer_group
        assert group.pending == 0


async def test_published_before_workers_then_split_across_a_group_exactly_once(
    backend: RedisMessageQueueBackend, names: Names
) -> None:
    stream = names("events")
    for i in range(300):
        await backend.publish(stream, {"i": i})
    seen: Counter[int] = Counter()
    per_worker: Counter[str] = Counter()

    async def worker() -> None:
        async with backend.consume() as consumer:
            async for event in consumer:
                seen[event["i"]] += 1
                per_worker[consumer.name] += 1
                if len(seen) == 300:
                    tg.cancel_scope.cancel()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(worker)
    assert sorted(seen) == list(range(300))
    assert max(seen.values()) == 1
    assert len(per_worker) >= 2
    assert (await backend.pending(stream)).count <= 3  # at most one in hand per cancelled worker


async def test_each_group_gets_its_own_copy(
    backend: RedisMessageQueueBackend, names: Names
) -> None:
    stream = names("events")
    for i in range(10):
        await backend.publish(stream, {"i": i})
    async with backend.consume(group=names("a")) as a, backend.consume(group=names("b")) as b:
        assert await take(a, 10) == await take(b, 10) == [{"i": i} for i in range(10)]


async def test_unacked_entries_of_a_dead_consumer_are_reclaimed(
    backend: RedisMessageQueueBackend, names: Names
) -> None:
    stream = names("events")
    for i in range(3):
        await backend.publish(stream, {"i": i})
    doomed = backend.consume()
    assert await take(doomed, 1) == [{"i": 0}]
    del doomed  # dropped without closing: like a worker that died
    survivor = backend.consume()
    got = await take(survivor, 3, timeout=15)
    assert sorted(e["i"] for e in got) == [0, 1, 2]
    counts = {p.id: p.deliveries for p in await backend.pending_entries(stream)}
    assert max(counts.values()) >= 2  # redelivered, counted by Redis
    await survivor.aclose()
    assert (await backend.pending(stream)).count == 0


async def test_probe_streams_stay_small_and_are_not_delivered(
    backend: RedisMessageQueueBackend, names: Names, raw: redis.Redis
) -> None:
    probe = "_" + names("health")
    stream = names("events")
    for i in range(250):
        await backend.publish(probe, {"i": i})
    await backend.publish(stream, {"real": 1})
    assert raw.xlen(probe) == 100
    async with backend.consume() as consumer:
        assert await take(consumer, 1) == [{"real": 1}]
        with anyio.move_on_after(0.5) as scope:
            await consumer.__anext__()
        assert scope.cancelled_caught
    raw.delete(probe)


async def test_bad_input_writes_nothing(
    backend: RedisMessageQueueBackend, names: Names, raw: redis.Redis, settings: Settings
) -> None:
    stream = names("events")
    for payload in ({"s": {1}}, {"b": b"x"}, {"n": float("nan")}, {"t": time}):
        with pytest.raises(PayloadError):
            await backend.publish(stream, payload)
    for key in ("", None, 3):
        with pytest.raises(StreamKeyError):
            await backend.publish(key, {"ok": True})  # type: ignore[arg-type]
    assert raw.exists(stream) == 0
    assert raw.exists(settings.registry_key) == 0


async def test_foreign_entries_go_to_the_dead_letter_stream(
    backend: RedisMessageQueueBackend, names: Names, raw: redis.Redis
) -> None:
    stream = names("events")
    await backend.publish(stream, {"n": 1})
    raw.xadd(stream, {"wrong": "field"})
    raw.xadd(stream, {"data": "{not json"})
    raw.xadd(stream, {"data": b"\x80\x81binary"})
    await backend.publish(stream, {"n": 2})
    async with backend.consume() as consumer:
        assert await take(consumer, 2) == [{"n": 1}, {"n": 2}]
    dead: list[Any] = raw.xrange(dead_letter_stream(stream))  # type: ignore[assignment]
    assert [d[1][b"source_stream"] for d in dead] == [stream.encode()] * 3
    assert b"not valid UTF-8 JSON" in dead[1][1][b"reason"]
    assert (await backend.pending(stream)).count == 0


async def test_blocking_reads_outlast_a_short_socket_timeout(
    settings: Settings, names: Names
) -> None:
    quick = dataclasses.replace(settings, socket_timeout=0.3, block_ms=1_000)
    stream = names("events")
    async with RedisMessageQueueBackend(quick) as b:
        await b.publish(stream, {"n": 0})
        async with b.consume() as consumer:
            await take(consumer, 1)
            with anyio.move_on_after(2.5):  # two full BLOCK windows with nothing
                await consumer.__anext__()
            await b.publish(stream, {"n": 1})
            assert await take(consumer, 1) == [{"n": 1}]


async def test_several_streams_are_read_concurrently(
    backend: RedisMessageQueueBackend, names: Names
) -> None:
    streams = [names(f"s{i}") for i in range(3)]
    for s in streams:
        await backend.publish(s, {"s": s, "n": 0})
    async with backend.consume() as consumer:
        assert len(await take(consumer, 3)) == 3
        for round_ in range(1, 6):
            start = time.monotonic()
            await backend.publish(streams[round_ % 3], {"n": round_})
            assert await take(consumer, 1) == [{"n": round_}]
            # Well under the 100 ms BLOCK window plus discovery: no serial waits.
            assert time.monotonic() - start < 5
    assert sum([(await backend.pending(s)).count for s in streams]) == 0


async def test_a_cancelled_wait_loses_nothing(
    backend: RedisMessageQueueBackend, names: Names
) -> None:
    stream = names("events")
    await backend.publish(stream, {"n": 0})
    async with backend.consume() as consumer:
        await take(consumer, 1)
        for n in range(1, 6):
            with anyio.move_on_after(0.05):
                await consumer.__anext__()
            await backend.publish(stream, {"n": n})
            assert await take(consumer, 1) == [{"n": n}]


async def test_a_destroyed_group_is_recreated(
    backend: RedisMessageQueueBackend, names: Names, raw: redis.Redis, settings: Settings
) -> None:
    stream = names("events")
    await backend.publish(stream, {"n": 0})
    async with backend.consume() as consumer:
        await take(consumer, 1)
        raw.xgroup_destroy(stream, settings.consumer_group)
        await backend.publish(stream, {"n": 1})
        got = await take(consumer, 1)
        # Recreated from the start of the stream: at least once, so n=0 may come again.
        assert got in ([{"n": 0}], [{"n": 1}])


async def test_unreachable_redis_at_start_is_a_clear_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    async with RedisMessageQueueBackend(Settings(url=url, socket_timeout=1)) as b:
        start = time.monotonic()
        with pytest.raises(ConnectError) as info:
            await b.publish("events", {"a": 1})
        with pytest.raises(ConnectError):
            await b.consume().__anext__()
        assert time.monotonic() - start < 15
    assert "hunter2-secret" not in str(info.value)
    assert "hunter2-secret" not in caplog.text


async def test_password_protected_server(names: Names, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "pa55-" + names("x").replace(":", "")
    with RedisServer(extra=("--requirepass", secret)) as server:
        wrong = Settings(url=f"redis://:nope@127.0.0.1:{server.port}/0")
        async with RedisMessageQueueBackend(wrong) as b:
            with pytest.raises(AccessDenied):
                await b.ping()
        good = Settings(url=f"redis://127.0.0.1:{server.port}/0", password=secret)
        async with RedisMessageQueueBackend(good) as b:
            await b.publish("events", {"n": 1})
            async with b.consume() as consumer:
                assert await take(consumer, 1) == [{"n": 1}]
            assert secret not in repr(b)
    assert secret not in caplog.text


async def test_workers_survive_a_redis_restart(
    own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="abe_redis")
    settings = Settings(url=own_server.url, block_ms=100, socket_timeout=1)
    async with RedisMessageQueueBackend(settings) as b:
        await b.publish("events", {"n": 0})
        async with b.consume() as consumer:
            assert await take(consumer, 1) == [{"n": 0}]
            own_server.stop()
            with anyio.move_on_after(1.0):
                await consumer.__anext__()  # retries quietly while Redis is down
            own_server.start()
            restarted = time.monotonic()
            await b.publish("events", {"n": 1})
            # n=0 was marked processed when we asked for the next one; its
            # ack waited out the outage and went through after the restart.
            assert await take(consumer, 1, timeout=15) == [{"n": 1}]
            print(f"recovered {time.monotonic() - restarted:.2f} s after the restart")
        assert (await b.pending("events")).count == 0
    unavailable = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(unavailable) == 1


async def test_concurrent_publishes_share_round_trips_on_one_connection(
    settings: Settings, names: Names, raw: redis.Redis
) -> None:
    stream = names("events")
    few = dataclasses.replace(settings, max_connections=4)
    async with RedisMessageQueueBackend(few) as backend:
        await backend.publish(stream, {"warm": True})
        coalescer = backend._pipelined()
        before = coalescer.round_trips
        ids: list[str] = []

        async def publish(i: int) -> None:
            ids.append(await backend.publish_entry(stream, {"i": i}))

        async with anyio.create_task_group() as tg:
            for i in range(500):
                tg.start_soon(publish, i)
        trips = coalescer.round_trips - before
    print(f"500 concurrent publishes took {trips} round trips")
    assert len(set(ids)) == 500
    assert raw.xlen(stream) == 501
    assert trips < 100


def test_sync_publishes_from_many_threads_share_round_trips(
    settings: Settings, names: Names, raw: redis.Redis
) -> None:
    stream = names("events")
    with SyncRedisQueue(settings) as queue:
        queue.publish(stream, {"warm": True})
        coalescer = queue._backend._pipelined()  # the async facade's, through the portal
        before = coalescer.round_trips
        ids: list[str] = []

        def publish(n: int) -> None:
            for i in range(25):
                ids.append(queue.publish_entry(stream, {"thread": n, "i": i}))

        threads = [threading.Thread(target=publish, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        trips = coalescer.round_trips - before
    print(f"400 publishes from 16 threads took {trips} round trips")
    assert len(set(ids)) == 400
    assert raw.xlen(stream) == 401
    assert trips < 400


async def test_a_backlog_is_read_ahead_and_nothing_is_lost(
    settings: Settings, names: Names, raw: redis.Redis
) -> None:
    stream = names("backlog")
    fast = dataclasses.replace(settings, claim_min_idle_ms=30_000, prefetch=64)
    async with RedisMessageQueueBackend(fast) as backend:
        await backend.publish_many(stream, [{"n": n} for n in range(3000)])
        seen: list[int] = []
        async with backend.consume() as consumer:
            with anyio.fail_after(30):
                async for event in consumer:
                    seen.append(event["n"])
                    if len(seen) == 1500:
                        break
        assert consumer.stats.read_ahead > 0
        # Closed with a read ahead maybe in flight: the rest goes to the next.
        async with backend.consume() as second:
            with anyio.fail_after(30):
                async for event in second:
                    seen.append(event["n"])
                    if len(set(seen)) == 3000:
                        break
        assert sorted(set(seen)) == list(range(3000))
        assert (await backend.pending(stream)).count == 0
        assert (
            only_pool(backend._open().topology).size <= 3
        )  # no connection left checked out by a read ahead


async def test_read_ahead_can_be_turned_off(
    settings: Settings, names: Names, raw: redis.Redis
) -> None:
    stream = names("no-ahead")
    off = dataclasses.replace(settings, claim_min_idle_ms=30_000, prefetch=64, read_ahead=False)
    async with RedisMessageQueueBackend(off) as backend:
        await backend.publish_many(stream, [{"n": n} for n in range(500)])
        async with backend.consume() as consumer:
            seen = [event["n"] for event in await take(consumer, 500, timeout=30)]
        assert consumer.stats.read_ahead == 0
        assert seen == list(range(500))
