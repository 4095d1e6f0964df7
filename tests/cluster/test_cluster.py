"""The backend on a real Redis Cluster: found by itself from one node's URL,
streams on every primary, dead letters in their stream's slot, slots that
move and a primary that dies while workers consume."""

from __future__ import annotations

import collections
import os
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from abe_redis import AccessDenied, ConfigError, NotReplicated, RedisMessageQueueBackend, Settings
from abe_redis._core.slots import key_slot
from abe_redis._io.cluster import Cluster
from abe_redis.embedded import RedisServer

from ..helpers import admin, clean_env, run_demo, take
from .servers import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.topology, pytest.mark.anyio]
Report = Callable[[str], None]


@pytest.fixture
def tag() -> str:
    """A prefix for this test's stream names: tests share a cluster."""
    return f"t{uuid.uuid4().hex[:6]}-"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


DURABLE: dict[str, Any] = {"publish_retry_seconds": 15, "publish_wait_replicas": 1}


def fast(url: str, **kw: Any) -> Settings:
    # Entries idle 10 s are taken from another consumer: longer than a
    # failover, so the duplicates counted are not reclaims of busy ones.
    return Settings(url=url, block_ms=100, claim_min_idle_ms=10_000, **kw)


class Tally:
    """What each group saw: payload ids, and how often."""

    def __init__(self) -> None:
        self.seen: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )

    def add(self, group: str, payload: dict[str, Any]) -> None:
        self.seen[group][payload["id"]] += 1

    def missing(self, group: str, expected: set[str]) -> set[str]:
        return expected - set(self.seen[group])

    def duplicates(self, group: str) -> int:
        return sum(n - 1 for n in self.seen[group].values())


async def worker(url: str, group: str, tally: Tally, **kw: Any) -> None:
    async with (
        RedisMessageQueueBackend(fast(url, **kw)) as backend,
        backend.consume(group=group) as events,
    ):
        async for event in events:
            tally.add(group, event)


async def under_way(tally: Tally, group: str, n: int = 200) -> None:
    """Wait until the group's workers have handled ``n`` events."""
    with anyio.fail_after(30):
        while sum(tally.seen[group].values()) < n:
            await anyio.sleep(0.05)


async def drain(tally: Tally, expected: set[str], groups: tuple[str, ...], timeout: float) -> None:
    """Wait until every group saw every expected id; fail naming what is missing."""
    with anyio.move_on_after(timeout):
        while any(tally.missing(g, expected) for g in groups):
            await anyio.sleep(0.05)
    for group in groups:
        missing = sorted(tally.missing(group, expected))
        assert not missing, f"{group} never got {len(missing)} events, such as {missing[:5]}"


def streams_by_primary(cluster: LocalCluster, streams: list[str]) -> dict[int, int]:
    counts: dict[int, int] = collections.Counter()
    for stream in streams:
        counts[cluster.node_of(stream).port] += 1
    return dict(counts)


async def test_a_cluster_is_found_from_one_nodes_url_and_every_event_arrives_once_per_group(
    cluster: LocalCluster, report: Report, tag: str
) -> None:
    streams = [f"{tag}orders-{i}" for i in range(60)]
    spread = streams_by_primary(cluster, streams)
    assert len(spread) == 3  # the 60 streams live on all three primaries
    tally = Tally()
    expected: set[str] = set()
    async with RedisMessageQueueBackend(fast(cluster.url)) as publisher:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(worker, cluster.url, "billing", tally)
            tg.start_soon(worker, cluster.url, "audit", tally)
            for round_ in range(10):
                for stream in streams:
                    event_id = f"{stream}/{round_}"
                    await publisher.publish(stream, {"id": event_id})
                    expected.add(event_id)
            # publish_many: one pipeline split across the nodes.
            many = [{"id": f"{streams[7]}/many-{n}"} for n in range(200)]
            await publisher.publish_many(streams[7], many)
            expected |= {p["id"] for p in many}
            await drain(tally, expected, ("billing", "audit"), timeout=60)
            tg.cancel_scope.cancel()
        topology = publisher._open().topology
        assert isinstance(topology, Cluster)
        assert topology.slots is not None
        assert len(topology.slots.primaries) == 3
    for group in ("billing", "audit"):
        assert not tally.missing(group, expected)
        assert tally.duplicates(group) == 0
    report(f"{len(expected)} events on 60 streams over primaries {sorted(spread.values())}: "
           "each once in both groups")  # fmt: skip


async def test_cluster_true_on_a_single_server_is_a_config_error() -> None:
    with RedisServer() as server:
        async with RedisMessageQueueBackend(Settings(url=server.url, cluster="true")) as backend:
            with pytest.raises(ConfigError, match="not a cluster node"):
                await backend.publish("s", {"n": 1})


async def test_dead_letters_live_and_replay_in_their_streams_slot(
    cluster: LocalCluster, tag: str
) -> None:
    invoices = f"{tag}invoices"
    only = fast(cluster.url, max_deliveries=1, streams=(invoices,))  # the cluster is shared
    async with RedisMessageQueueBackend(only) as backend:
        await backend.publish(invoices, {"id": "bad"})
        async with backend.deliveries(group="dl") as deliveries:
            with anyio.fail_after(10):
                delivery = await deliveries.__anext__()
            await delivery.nack(error="boom")
            with anyio.move_on_after(0.5):
                await deliveries.__anext__()
        assert await backend.dead_letter_count(invoices) == 1
        (dead,) = await backend.dead_letters(invoices)
        assert (dead.source_stream, dead.error, dead.payload) == (invoices, "boom", {"id": "bad"})
        assert (await backend.replay_dead_letters(invoices)).replayed == 1
        async with backend.consume(group="after-replay") as events:
            got = await take(events, 2, timeout=10)
        assert got == [{"id": "bad"}, {"id": "bad"}]  # the original, and the replayed copy


def migrate_slot(cluster: LocalCluster, slot: int, target: RedisServer) -> None:
    """Move ``slot`` to ``target`` the way redis-cli's reshard does."""
    source = next(s for s in cluster.servers if s.process is not None and owns(s, slot))
    with admin(source.url) as src, admin(target.url) as dst:
        src_id = src.execute_command("CLUSTER", "MYID").decode()  # type: ignore[no-untyped-call]
        dst_id = dst.execute_command("CLUSTER", "MYID").decode()  # type: ignore[no-untyped-call]
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)  # type: ignore[no-untyped-call]
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)  # type: ignore[no-untyped-call]
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):  # type: ignore[no-untyped-call]
            src.execute_command(  # type: ignore[no-untyped-call]
                "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys
            )
        # The target first, then the source, then the rest (as redis-cli's
        # reshard does): a source told first would redirect to a target that
        # still redirects back.
        others = [s for s in cluster.servers[: cluster.primaries] if s not in (target, source)]
        for node in (target, source, *others):
            if node.process is None:
                continue
            with admin(node.url) as client:
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)  # type: ignore[no-untyped-call]


def owns(server: RedisServer, slot: int) -> bool:
    with admin(server.url) as client:
        for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):  # type: ignore[no-untyped-call]
            if start <= slot <= end:
                return int(primary[1]) == server.port
    return False


class Publishing:
    """Publish round after round to every stream until stopped: ids of the
    publishes that returned go to ``published``, errors to ``errors``."""

    def __init__(self, publisher: RedisMessageQueueBackend, streams: list[str]) -> None:
        self.publisher = publisher
        self.streams = streams
        self.published: set[str] = set()
        self.errors: list[BaseException] = []
        self._stop = anyio.Event()
        self._done = anyio.Event()

    async def run(self) -> None:
        round_ = 0
        while not self._stop.is_set():
            for stream in self.streams:
                event_id = f"{stream}/{round_}"
                try:
                    await self.publisher.publish(stream, {"id": event_id})
                except Exception as exc:
                    self.errors.append(exc)
                else:
                    self.published.add(event_id)
            round_ += 1
            await anyio.sleep(0.01)
        self._done.set()

    async def stop(self) -> None:
        """Stop and wait until the last round is over."""
        self._stop.set()
        with anyio.fail_after(60):
            await self._done.wait()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # trio: the tests above
async def test_streams_whose_slots_migrate_during_consumption_lose_nothing(
    cluster: LocalCluster, report: Report, tag: str
) -> None:
    streams = [f"{tag}moving-{i}" for i in range(30)]
    tally = Tally()
    publisher = RedisMessageQueueBackend(fast(cluster.url))
    traffic = Publishing(publisher, streams)
    async with publisher, anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(worker, cluster.url, "movers", tally)
        tg.start_soon(traffic.run)
        await under_way(tally, "movers")
        started = time.monotonic()
        for stream in streams[:10]:
            current = cluster.node_of(stream)
            target = next(s for s in cluster.servers[: cluster.primaries] if s is not current)
            await anyio.to_thread.run_sync(migrate_slot, cluster, key_slot(stream), target)
        migration = time.monotonic() - started
        await anyio.sleep(1.0)  # traffic after the move too
        await traffic.stop()
        await drain(tally, traffic.published, ("movers",), timeout=60)
        tg.cancel_scope.cancel()
    assert not traffic.errors
    report(
        f"10 of 30 streams migrated in {migration:.1f} s during traffic: "
        f"{len(traffic.published)} published, 0 lost, {tally.duplicates('movers')} duplicates"
    )


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # trio: the tests above
async def test_a_primary_killed_during_consumption_loses_nothing_acknowledged(
    report: Report, tag: str
) -> None:
    # A cluster of its own: this one loses a node.
    with LocalCluster() as cluster:
        streams = [f"{tag}kill-{i}" for i in range(30)]
        victim = cluster.node_of(streams[0])
        victim_streams = {s for s in streams if cluster.node_of(s) is victim}
        tally = Tally()
        async with (
            # Durable: a write the dead primary acknowledged but had not yet
            # replicated would be lost in the failover (asynchronous replication).
            RedisMessageQueueBackend(fast(cluster.url, **DURABLE)) as publisher,
            anyio.create_task_group() as tg,
        ):
            traffic = Publishing(publisher, streams)
            for _ in range(2):
                tg.start_soon(worker, cluster.url, "survivors", tally)
            tg.start_soon(traffic.run)
            await under_way(tally, "survivors")
            assert victim.process is not None
            os.kill(victim.process.pid, signal.SIGKILL)
            killed = time.monotonic()
            victim.process.wait()
            victim.process = None
            at_kill = {k for k in traffic.published if k.startswith(f"{streams[0]}/")}
            with anyio.fail_after(60):
                # The victim's streams are read again once its replica took over.
                while (
                    not {k for k in tally.seen["survivors"] if k.startswith(f"{streams[0]}/")}
                    - at_kill
                ):
                    await anyio.sleep(0.05)
            resumed = time.monotonic() - killed
            await anyio.sleep(1.0)
            await traffic.stop()
            await drain(tally, traffic.published, ("survivors",), timeout=60)
            tg.cancel_scope.cancel()
        errors = traffic.errors
        seen = tally.seen["survivors"]
        on_victim = sum(n - 1 for k, n in seen.items() if k.split("/")[0] in victim_streams)
        report(
            f"primary killed: {len(traffic.published)} published durably, {len(errors)} raised "
            f"{sorted({type(e).__name__ for e in errors})}, 0 lost, "
            f"{tally.duplicates('survivors')} duplicates ({on_victim} on its "
            f"{len(victim_streams)} streams), its streams read again {resumed:.1f} s after"
        )
        assert {type(e) for e in errors} <= {NotReplicated}  # its replica is gone now


def test_the_demo_runs_against_the_cluster(cluster: LocalCluster) -> None:
    run = run_demo({**clean_env(), "REDIS_URL": cluster.url})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "missing 0, duplicates 0, still pending 0" in run.stdout


async def test_a_cluster_whose_map_the_acl_hides_is_a_clear_error(
    cluster: LocalCluster, tag: str
) -> None:
    # Without +cluster|slots, auto mode takes the node for one server; the
    # first redirect shows it is a cluster, and the refusal is then named.
    for server in cluster.servers:
        with admin(server.url) as client:
            client.execute_command(  # type: ignore[no-untyped-call]
                "ACL", "SETUSER", "noslots", "reset", "on", ">pw", "~*", "+@all", "-cluster|slots"
            )
    url = cluster.url.replace("redis://", "redis://noslots:pw@")
    elsewhere = next(
        f"{tag}{i}" for i in range(1000) if cluster.node_of(f"{tag}{i}") is not cluster.servers[0]
    )
    async with RedisMessageQueueBackend(fast(url, cluster="auto")) as backend:
        with anyio.fail_after(15), pytest.raises(AccessDenied, match="cluster"):
            await backend.publish(elsewhere, {"n": 1})
