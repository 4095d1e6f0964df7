"""A redis-server that is up but still loading its data set (-LOADING).

After a restart Redis accepts connections at once and answers every command
with ``LOADING`` until its data set is back in memory. Workers and
publishers must wait that out like an outage: nothing raised, nothing lost,
no ack dropped. The servers here load slowly on purpose
(``key-load-delay``), so the LOADING window is seconds long, not a race.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import anyio
import pytest
import redis

from abe_redis import RedisMessageQueueBackend, ServerBusy, Settings, SyncRedisQueue
from abe_redis.embedded import RedisServer

from ..helpers import admin, take

pytestmark = pytest.mark.integration

# About 1 MB of filler keys loading at 500 µs each: 1.5-2 s of LOADING. The
# server answers clients between chunks of 1 KB instead of 2 MB, so LOADING
# replies come back while it loads rather than after.
SLOW_LOAD = (
    "--key-load-delay", "500",
    "--loading-process-events-interval-bytes", "1024",
    "--enable-debug-command", "local",
)  # fmt: skip
FILLER_KEYS = 3000


@pytest.fixture
def slow_server() -> Iterator[RedisServer]:
    """A private redis-server that takes seconds to load its RDB."""
    with RedisServer(extra=SLOW_LOAD) as server:
        with admin(server.url) as client:
            pipe = client.pipeline(transaction=False)
            for i in range(FILLER_KEYS):
                pipe.set(f"filler:{i}", b"x" * 300)
            pipe.execute()
        yield server


def assert_loading(server: RedisServer) -> None:
    with admin(server.url) as client, pytest.raises(redis.BusyLoadingError):
        client.ping()


def restart_into_loading(server: RedisServer) -> None:
    """Save everything, restart, and return once the server answers LOADING."""
    # The server closes the connection as it exits.
    with admin(server.url) as client, suppress(redis.ConnectionError):
        client.shutdown(save=True)
    assert server.process is not None
    server.process.wait(timeout=10)
    server.process = None
    server.start()
    assert_loading(server)


@contextmanager
def reloading(server: RedisServer) -> Iterator[None]:
    """DEBUG RELOAD in a thread: the server loads its data set again without
    dropping anyone's connection, so LOADING replies are the only fault."""

    def reload() -> None:
        with admin(server.url, socket_timeout=30) as client:
            client.execute_command("DEBUG", "RELOAD")  # type: ignore[no-untyped-call]

    thread = threading.Thread(target=reload)
    thread.start()
    deadline = time.monotonic() + 5
    with admin(server.url) as client:
        while True:
            try:
                client.ping()
            except redis.BusyLoadingError:
                break
            assert time.monotonic() < deadline, "DEBUG RELOAD never started loading"
            time.sleep(0.005)
    try:
        yield
    finally:
        thread.join(timeout=30)


def wait_until_loaded(server: RedisServer) -> None:
    with admin(server.url) as client:
        for _ in range(300):
            try:
                client.ping()
                return
            except redis.BusyLoadingError:
                time.sleep(0.05)
    pytest.fail("the server was still loading after 15 s")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_consumer_waits_out_loading_with_acks_owed(
    slow_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="abe_redis")
    settings = Settings(url=slow_server.url, block_ms=100, prefetch=16)
    async with RedisMessageQueueBackend(settings) as backend:
        for i in range(100):
            await backend.publish("events" if i % 2 else "other", {"i": i})
        seen: list[int] = []
        async with backend.consume() as events:
            seen += [e["i"] for e in await take(events, 10)]
            # Ten handled, the last in hand: acks are owed when loading starts.
            with reloading(slow_server):
                seen += [e["i"] for e in await take(events, 90, timeout=30)]
        assert sorted(seen) == list(range(100))
        for stream in ("events", "other"):
            assert (await backend.pending(stream)).count == 0
    outages = [r.getMessage() for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(outages) == 1
    assert "ServerBusy" in outages[0]
    assert "LOADING" in outages[0]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_consumer_survives_a_restart_into_loading(slow_server: RedisServer) -> None:
    # The CI failure this file was written for: XACK answered LOADING.
    settings = Settings(url=slow_server.url, block_ms=100, socket_timeout=2, prefetch=16)
    async with RedisMessageQueueBackend(settings) as backend:
        for i in range(100):
            await backend.publish("events", {"i": i})
        seen: list[int] = []
        async with backend.consume() as events:
            seen += [e["i"] for e in await take(events, 10)]
            await anyio.to_thread.run_sync(restart_into_loading, slow_server)
            seen += [e["i"] for e in await take(events, 90, timeout=30)]
        assert sorted(seen) == list(range(100))
        assert (await backend.pending("events")).count == 0


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_backend_started_while_loading_publishes_and_consumes(
    slow_server: RedisServer,
) -> None:
    settings = Settings(url=slow_server.url, block_ms=100, publish_retry_seconds=15)
    with admin(slow_server.url) as client:
        client.xadd("events", {"data": b'{"before": true}'})
        client.sadd("abe_redis:streams", "events")
    await anyio.to_thread.run_sync(restart_into_loading, slow_server)
    async with RedisMessageQueueBackend(settings) as backend:
        # First contact with a loading server: waited for, not a ConnectError.
        await backend.publish("events", {"after": True})
        async with backend.consume() as events:
            assert await take(events, 2, timeout=30) == [{"before": True}, {"after": True}]


def test_sync_publishing_waits_out_loading(slow_server: RedisServer) -> None:
    settings = Settings(url=slow_server.url, block_ms=100, publish_retry_seconds=15)
    with SyncRedisQueue(settings) as queue:
        queue.publish("jobs", {"n": 1})
        with reloading(slow_server):
            queue.publish("jobs", {"n": 2})
            queue.publish_many("jobs", [{"n": 3}, {"n": 4}])
        with queue.consume() as jobs:
            got = [next(jobs) for _ in range(4)]
    assert got == [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]


def test_publishing_past_the_budget_while_loading_is_server_busy(
    slow_server: RedisServer,
) -> None:
    settings = Settings(url=slow_server.url, publish_retry_seconds=0.3)
    restart_into_loading(slow_server)
    with SyncRedisQueue(settings) as queue, pytest.raises(ServerBusy, match="LOADING"):
        queue.publish("jobs", {"n": 1})
    wait_until_loaded(slow_server)
    with admin(slow_server.url) as client:
        assert client.xlen("jobs") == 0  # refused, so nothing was written
