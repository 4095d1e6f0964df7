"""The backend behind Sentinel: the master found from a redis+sentinel:// URL,
and publishers and workers that follow a failover without a restart."""

from __future__ import annotations

import collections
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from abe_redis import ConfigError, RedisMessageQueueBackend, Settings
from abe_redis._io.sentinel import Sentinel

from ..helpers import clean_env, reporter, run_demo, take
from .servers import SentinelSet

pytestmark = [pytest.mark.integration, pytest.mark.topology, pytest.mark.anyio]
Report = Callable[[str], None]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture
def sentinels() -> Iterator[SentinelSet]:
    with SentinelSet() as made:
        yield made


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Report:
    """Print a figure into the test output even when output is captured."""
    return reporter(capsys, "sentinel")


def fast(url: str, **kw: Any) -> Settings:
    return Settings(url=url, block_ms=100, claim_min_idle_ms=10_000, **kw)


def test_sentinel_urls_are_read_and_bad_ones_named() -> None:
    s = Settings(url="redis+sentinel://app:s3cret@10.0.0.1:26379,10.0.0.2:26380/queue/2")
    target = s.sentinel
    assert target is not None
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380))
    assert (target.service, target.db, target.username, target.password) == (
        "queue",
        2,
        "app",
        "s3cret",
    )
    assert "s3cret" not in repr(s)
    assert "s3cret" not in s.redacted_url
    for bad, what in [
        ("redis+sentinel://10.0.0.1/queue", "not host:port"),
        ("redis+sentinel://10.0.0.1:26379", "service_name"),
        ("redis+sentinel://10.0.0.1:26379/queue/x", "db must be a number"),
    ]:
        with pytest.raises(ConfigError, match=what):
            Settings(url=bad)


async def test_publishers_and_workers_follow_a_failover(
    sentinels: SentinelSet, report: Report
) -> None:
    streams = [f"jobs-{i}" for i in range(5)]
    seen: collections.Counter[str] = collections.Counter()
    published: set[str] = set()
    errors: list[BaseException] = []
    first_master = sentinels.master_port()

    async def worker() -> None:
        async with (
            RedisMessageQueueBackend(fast(sentinels.url)) as backend,
            backend.consume(group="g") as events,
        ):
            async for event in events:
                seen[event["id"]] += 1

    after_failover: set[str] = set()
    failed_over = anyio.Event()
    stop = anyio.Event()

    async def publish(backend: RedisMessageQueueBackend) -> None:
        n = 0
        while not stop.is_set():
            for stream in streams:
                event_id = f"{stream}/{n}"
                try:
                    await backend.publish(stream, {"id": event_id})
                except Exception as exc:
                    errors.append(exc)
                else:
                    published.add(event_id)
                    if failed_over.is_set():
                        after_failover.add(event_id)
            n += 1
            await anyio.sleep(0.01)

    publisher = RedisMessageQueueBackend(fast(sentinels.url, publish_retry_seconds=20))
    async with publisher, anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(worker)
        tg.start_soon(publish, publisher)
        with anyio.fail_after(30):
            while sum(seen.values()) < 200:
                await anyio.sleep(0.05)
        assert sentinels.primary.process is not None
        os.kill(sentinels.primary.process.pid, signal.SIGKILL)
        killed = time.monotonic()
        sentinels.primary.process.wait()
        sentinels.primary.process = None
        with anyio.fail_after(60):
            while sentinels.master_port() == first_master:
                await anyio.sleep(0.1)
        promoted = time.monotonic() - killed
        failed_over.set()
        with anyio.fail_after(60):
            while len(after_failover) < 100:
                await anyio.sleep(0.05)
        resumed = time.monotonic() - killed
        stop.set()
        with anyio.move_on_after(30):
            while set(published) - set(seen):
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    topology = publisher._wire.topology if publisher._wire is not None else None
    assert isinstance(topology, Sentinel)
    assert topology.master is not None
    assert topology.master.port == sentinels.replica.port  # it followed the failover
    lost = published - set(seen)
    duplicates = sum(n - 1 for n in seen.values())
    report(
        f"primary killed: replica promoted after {promoted:.1f} s, publishing resumed "
        f"{resumed:.1f} s after the kill; {len(published)} published, {len(errors)} raised, "
        f"{len(lost)} lost (acknowledged by the old primary, not yet replicated), "
        f"{duplicates} duplicates"
    )
    assert not (after_failover - set(seen))  # everything since the failover arrived
    assert not errors


async def test_the_master_is_found_and_checked(sentinels: SentinelSet) -> None:
    async with RedisMessageQueueBackend(fast(sentinels.url)) as backend:
        await backend.publish("s", {"n": 1})
        async with backend.consume(group="g") as events:
            assert await take(events, 1) == [{"n": 1}]
        topology = backend._wire.topology if backend._wire is not None else None
        assert isinstance(topology, Sentinel)
        assert topology.master is not None
        assert topology.master.port == sentinels.primary.port


def test_the_demo_runs_behind_sentinel(sentinels: SentinelSet) -> None:
    run = run_demo({**clean_env(), "REDIS_URL": sentinels.url})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "missing 0, duplicates 0, still pending 0" in run.stdout
