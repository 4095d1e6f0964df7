"""Leases, draining, clean-up and policies against a real redis-server."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import anyio
import pytest
import redis

from abe_redis import (
    ConnectError,
    GroupMissingError,
    GroupPolicy,
    RedisMessageQueueBackend,
    Settings,
)
from abe_redis.embedded import RedisServer

from ..helpers import take

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
Names = Callable[[str], str]


async def test_a_long_handler_keeps_its_entry(settings: Settings, names: Names) -> None:
    stream = names("events")
    quick = dataclasses.replace(settings, claim_min_idle_ms=600)
    async with RedisMessageQueueBackend(quick) as backend:
        await backend.publish(stream, {"n": 1})
        holder = backend.consume()
        assert await take(holder, 1) == [{"n": 1}]
        other = backend.consume()
        with anyio.move_on_after(2.5):  # four times the claim threshold
            stolen = await other.__anext__()
            pytest.fail(f"another consumer took a leased entry: {stolen}")
        await holder.aclose()  # the long handler finishes
        await other.aclose()
        assert (await backend.pending(stream)).count == 0


async def test_a_lease_is_not_renewed_forever(settings: Settings, names: Names) -> None:
    stream = names("events")
    capped = dataclasses.replace(settings, claim_min_idle_ms=300, max_lease_ms=800)
    async with RedisMessageQueueBackend(capped) as backend:
        await backend.publish(stream, {"n": 1})
        stuck = backend.consume()
        await take(stuck, 1)  # ... and never finishes
        start = time.monotonic()
        async with backend.consume() as rescuer:
            assert await take(rescuer, 1, timeout=10) == [{"n": 1}]
        assert time.monotonic() - start >= 0.5  # not before the lease ran out
        await stuck.aclose()


async def test_closing_releases_prefetched_entries_at_once(
    settings: Settings, names: Names
) -> None:
    stream = names("events")
    slow_claims = dataclasses.replace(settings, claim_min_idle_ms=8_000, prefetch=10)
    async with RedisMessageQueueBackend(slow_claims) as backend:
        for i in range(10):
            await backend.publish(stream, {"i": i})
        first = backend.consume()
        await take(first, 1)  # fetched all ten, handled one
        other = backend.consume()
        with anyio.move_on_after(0.3):
            await other.__anext__()  # registers, finds nothing: all ten are held
        await first.aclose()
        start = time.monotonic()
        got = await take(other, 9, timeout=7)
        waited = time.monotonic() - start
        await other.aclose()
        assert sorted(e["i"] for e in got) == list(range(1, 10))
        assert waited < 4  # the claim check (every 2 s), not the 8 s idle threshold
        assert (await backend.pending(stream)).count == 0
        assert first.stats.released == 9


async def test_deliveries_drain_before_closing(settings: Settings, names: Names) -> None:
    stream = names("events")
    async with RedisMessageQueueBackend(settings) as backend:
        for i in range(3):
            await backend.publish(stream, {"i": i})
        deliveries = backend.deliveries()
        a = await deliveries.__anext__()
        b = await deliveries.__anext__()

        async def finish_later() -> None:
            await anyio.sleep(0.3)
            await a.ack()
            await b.ack()

        async with anyio.create_task_group() as tg:
            tg.start_soon(finish_later)
            start = time.monotonic()
            await deliveries.aclose(drain_timeout=5)
        assert 0.25 < time.monotonic() - start < 4
        assert deliveries.stats.acked == 2
        summary = await backend.pending(stream)
        assert summary.count == 1  # the third, released for others
        assert (await backend.pending_entries(stream))[0].idle_ms >= settings.claim_min_idle_ms


async def test_stale_consumers_are_removed_only_when_nothing_is_pending(
    settings: Settings, names: Names, raw: redis.Redis
) -> None:
    stream = names("events")
    async with RedisMessageQueueBackend(settings) as backend:
        await backend.publish(stream, {"n": 1})
        await backend.publish(stream, {"n": 2})
        async with backend.consume() as done:
            await take(done, 1)  # handled and acked on close: nothing pending
        holder = backend.consume()
        await take(holder, 1)  # leaves one entry pending
        holder_name = holder.name
        del holder
        await anyio.sleep(0.6)
    tidy = dataclasses.replace(settings, stale_consumer_ms=500)
    async with RedisMessageQueueBackend(tidy) as backend:
        async with backend.consume() as cleaner:
            assert await take(cleaner, 1) == [{"n": 2}]  # reclaimed from the holder
            left = {c["name"] for c in raw.xinfo_consumers(stream, settings.consumer_group)}
        assert done.name not in {n.decode() if isinstance(n, bytes) else n for n in left}
        assert holder_name in {n.decode() if isinstance(n, bytes) else n for n in left}


async def test_a_vanished_group_can_be_an_error(
    settings: Settings, names: Names, raw: redis.Redis
) -> None:
    stream = names("events")
    strict = dataclasses.replace(settings, on_missing_group=GroupPolicy.FAIL)
    async with RedisMessageQueueBackend(strict) as backend:
        await backend.publish(stream, {"n": 0})
        consumer = backend.consume()
        await take(consumer, 1)
        raw.xgroup_destroy(stream, settings.consumer_group)
        with pytest.raises(GroupMissingError, match="vanished"):
            await take(consumer, 1)


async def test_idempotent_publish_on_a_real_server(
    backend: RedisMessageQueueBackend, names: Names, raw: redis.Redis
) -> None:
    stream = names("events")
    raw.script_flush()  # the first call must fall back from EVALSHA to EVAL
    ids = [await backend.publish_entry(stream, {"n": 1}, idempotency_key="Ev1") for _ in range(3)]
    assert len(set(ids)) == 1
    assert raw.xlen(stream) == 1
    marker = f"abe_redis:idem:{{{stream}}}:Ev1"
    assert 0 < raw.pttl(marker) <= backend.settings.idempotency_window_ms
    raw.delete(marker)


async def test_publish_gives_up_after_its_retry_budget() -> None:
    with RedisServer() as server:
        settings = Settings(url=server.url, publish_retry_seconds=1.0, socket_timeout=0.5)
        async with RedisMessageQueueBackend(settings) as backend:
            await backend.publish("events", {"n": 0})
            server.stop()
            start = time.monotonic()
            with pytest.raises(ConnectError):
                await backend.publish("events", {"n": 1})
            # It retried (backoff sleeps), then gave up before the next wait
            # would pass the 1 s budget.
            assert 0.2 < time.monotonic() - start < 10
