"""The cluster row: one Redis server against a cluster of three primaries
(with a replica each), 60 streams, measured in one run, rounds interleaved.

Publishing is 50 concurrent tasks writing round-robin to the 60 streams;
consuming is 3 workers of one group draining them. Both run through the
same backend code; only ``REDIS_URL`` differs. No CPU pinning: the six
cluster nodes share the machine's cores with the client. It prints figures
and the cluster / single-server ratio; it asserts nothing about timings.

    python benchmarks/cluster.py [--events 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import anyio
from bench import drain

from abe_redis import RedisMessageQueueBackend, Settings
from abe_redis.cli import slack_event
from abe_redis.embedded import RedisServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.cluster.servers import LocalCluster

STREAMS = [f"bench:cluster-{i}" for i in range(60)]
EVENTS = [slack_event(i) for i in range(1000)]


def settings(url: str) -> Settings:
    return Settings(url=url, registry_key="bench:cluster-streams", prefetch=500, block_ms=200)


async def publish(url: str, n: int) -> float:
    """50 tasks, ``n`` events round-robin over the 60 streams; events a second."""
    async with RedisMessageQueueBackend(settings(url)) as backend:
        for stream in STREAMS:  # registered and connected before the clock starts
            await backend.publish(stream, EVENTS[0])
        per_task = n // 50

        async def task(t: int) -> None:
            for i in range(per_task):
                await backend.publish(STREAMS[(t + i) % 60], EVENTS[i % 1000])

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for t in range(50):
                tg.start_soon(task, t)
        rate = per_task * 50 / (time.perf_counter() - start)
        for stream in STREAMS:
            await backend.delete_stream(stream)
    return rate


async def consume(url: str, n: int) -> float:
    """3 workers of one group drain ``n`` events from the 60 streams."""
    async with RedisMessageQueueBackend(settings(url)) as backend:
        for i, stream in enumerate(STREAMS):
            share = n // 60
            await backend.publish_many(stream, [EVENTS[(i + j) % 1000] for j in range(share)])
        rate = await drain(backend, n // 60 * 60, 3)
        for stream in STREAMS:
            await backend.delete_stream(stream)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {}
    with RedisServer() as server, LocalCluster() as cluster:
        print(
            f"cluster row: one redis-server {server.version} against 3 primaries + 3 replicas, "
            f"60 streams, {args.events} events, median of {args.repeat} rounds",
            flush=True,
        )
        targets = {"one server": server.url, "cluster": cluster.url}
        for _ in range(args.repeat):
            for workload, fn in (("publish, 50 tasks", publish), ("consume, 3 workers", consume)):
                for name, url in targets.items():
                    runs.setdefault(f"{workload}, {name}", []).append(
                        anyio.run(fn, url, args.events)
                    )
    for name, values in runs.items():
        shown = ", ".join(f"{v:,.0f}" for v in values)
        print(f"  {name:<32} {statistics.median(values):>10,.0f}/s   runs: {shown}")
    for workload in ("publish, 50 tasks", "consume, 3 workers"):
        each: list[float] = [
            c / s
            for c, s in zip(
                runs[f"{workload}, cluster"], runs[f"{workload}, one server"], strict=True
            )
        ]
        shown = ", ".join(f"{r:.2f}" for r in each)
        print(f"  {workload}: cluster / one server {statistics.median(each):.2f}x ({shown})")


if __name__ == "__main__":
    main()
