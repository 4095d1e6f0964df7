"""The backend behind Sentinel: the master found from a redis+sentinel:// URL,
and publishers and workers that follow a failover without a restart."""

from __future__ import annotations

import collections
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from abe_redis import ConfigError, ConnectError, RedisMessageQueueBackend, Settings
from abe_redis._io.sentinel import Sentinel

from ..helpers import admin, certificate, clean_env, reporter, run_demo, take
from .servers import SentinelSet, Tls

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


def role(url: str) -> str:
    with admin(url) as client:
        name = client.execute_command("ROLE")[0]  # type: ignore[no-untyped-call]
    return name.decode() if isinstance(name, bytes) else str(name)


class Outcome:
    """What one failover run saw."""

    def __init__(self) -> None:
        self.seen: collections.Counter[str] = collections.Counter()
        self.published: set[str] = set()
        self.after_failover: set[str] = set()
        self.errors: list[BaseException] = []
        self.promoted = self.resumed = 0.0

    @property
    def lost(self) -> set[str]:
        return self.published - set(self.seen)

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.seen.values())


async def fail_over_while_busy(
    sentinels: SentinelSet, fail: Callable[[], None], retry_seconds: float = 20, **kw: Any
) -> Outcome:
    """Two workers consume and a publisher writes to 5 streams; ``fail()``
    moves the master; until a primary still up became a replica, 100 events
    went out after that, and everything published was consumed (or 30 s
    passed)."""
    streams = [f"jobs-{i}" for i in range(5)]
    out = Outcome()
    first_master = sentinels.master_port()
    failed_over = anyio.Event()
    stop = anyio.Event()

    async def worker() -> None:
        async with (
            RedisMessageQueueBackend(fast(sentinels.url, **kw)) as backend,
            backend.consume(group="g") as events,
        ):
            async for event in events:
                out.seen[event["id"]] += 1

    async def publish(backend: RedisMessageQueueBackend) -> None:
        n = 0
        while not stop.is_set():
            for stream in streams:
                event_id = f"{stream}/{n}"
                try:
                    await backend.publish(stream, {"id": event_id})
                except Exception as exc:
                    out.errors.append(exc)
                else:
                    out.published.add(event_id)
                    if failed_over.is_set():
                        out.after_failover.add(event_id)
            n += 1
            await anyio.sleep(0.01)

    publisher = RedisMessageQueueBackend(
        fast(sentinels.url, publish_retry_seconds=retry_seconds, **kw)
    )
    async with publisher, anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(worker)
        tg.start_soon(publish, publisher)
        with anyio.fail_after(30):
            while sum(out.seen.values()) < 200:
                await anyio.sleep(0.05)
        began = time.monotonic()
        fail()
        with anyio.fail_after(60):
            while sentinels.master_port() == first_master:
                await anyio.sleep(0.1)
        out.promoted = time.monotonic() - began
        failed_over.set()
        with anyio.fail_after(60):
            # A primary still up is a replica at the end of a failover.
            while sentinels.primary.process is not None and role(sentinels.primary.url) != "slave":
                await anyio.sleep(0.1)
            out.after_failover.clear()
            while len(out.after_failover) < 100:
                await anyio.sleep(0.05)
        out.resumed = time.monotonic() - began
        stop.set()
        with anyio.move_on_after(30):
            while out.lost:
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    topology = publisher._wire.topology if publisher._wire is not None else None
    assert isinstance(topology, Sentinel)
    assert topology.master is not None
    assert topology.master.port == sentinels.replica_port  # it followed the failover
    return out


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # trio: the fault suites
async def test_publishers_and_workers_follow_a_failover(
    sentinels: SentinelSet, report: Report
) -> None:
    out = await fail_over_while_busy(sentinels, lambda: kill_primary(sentinels))
    report(
        f"primary killed: replica promoted after {out.promoted:.1f} s, publishing resumed "
        f"{out.resumed:.1f} s after the kill; {len(out.published)} published, "
        f"{len(out.errors)} raised, {len(out.lost)} lost (acknowledged by the old primary, "
        f"not yet replicated), {out.duplicates} duplicates"
    )
    assert not (out.after_failover - set(out.seen))  # everything since the failover arrived
    assert not out.errors


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_planned_failover_loses_nothing_with_min_replicas_to_write(
    report: Report,
) -> None:
    # SENTINEL FAILOVER leaves the old primary up; with min-replicas-to-write
    # it refuses writes (NOREPLICAS) once its replica is gone, and the
    # publisher retries them on the new primary.
    with SentinelSet("--min-replicas-to-write", "1", "--min-replicas-max-lag", "2") as sentinels:
        out = await fail_over_while_busy(sentinels, sentinels.failover, retry_seconds=40)
    report(
        f"SENTINEL FAILOVER with min-replicas-to-write 1: promoted after {out.promoted:.1f} s, "
        f"publishing resumed {out.resumed:.1f} s after; {len(out.published)} published, "
        f"{len(out.errors)} raised, {len(out.lost)} lost, {out.duplicates} duplicates"
    )
    assert not out.lost
    assert not out.errors


def kill_primary(sentinels: SentinelSet) -> None:
    assert sentinels.primary.process is not None
    os.kill(sentinels.primary.process.pid, signal.SIGKILL)
    sentinels.primary.process.wait()
    sentinels.primary.process = None


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_tls_to_the_sentinels_and_the_master_across_a_failover(
    tmp_path: Path, report: Report
) -> None:
    # TLS only where clients go (the servers' plain ports are the harness's).
    cert, key = certificate(tmp_path)
    with SentinelSet(tls=Tls(cert, key)) as sentinels:
        tls: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(cert)}
        async with RedisMessageQueueBackend(fast(sentinels.url, **tls)) as backend:
            await backend.publish("s", {"n": 1})
            async with backend.consume(group="g") as events:
                assert await take(events, 1) == [{"n": 1}]
        out = await fail_over_while_busy(sentinels, lambda: kill_primary(sentinels), **tls)
        untrusted = Settings(url=sentinels.url, ssl=True, socket_timeout=2)
        async with RedisMessageQueueBackend(untrusted) as backend:
            with pytest.raises(ConnectError, match="certificate"):
                await backend.publish("s", {"n": 2})
    report(
        f"over TLS, primary killed: resumed {out.resumed:.1f} s after; "
        f"{len(out.published)} published, {len(out.lost)} lost, {out.duplicates} duplicates"
    )
    assert not (out.after_failover - set(out.seen))
    assert not out.errors


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
