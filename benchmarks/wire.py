"""What the wire layer costs: our connection against redis.asyncio, same server, same run.

CPU time of this process per command (``time.process_time``, which a busy
shared machine disturbs less than the wall clock), and wall time, for:

* one PING per round trip, sequential;
* XADD in batches of 1000 (a pipeline in redis.asyncio, a Batch here);
* the same on trio, where redis.asyncio does not run at all.

    python benchmarks/wire.py [--rounds 5] [--commands 20000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import redis.asyncio as aioredis

from abe_redis import Settings
from abe_redis._core.commands import Ping, XAdd
from abe_redis._core.steps import Batch
from abe_redis._io.executor import Wire
from abe_redis._io.topology import open_topology
from abe_redis.embedded import RedisServer

FIELDS = ((b"data", b'{"type":"message","text":"hello","n":1}'),)
Measure = Callable[[str, int], Awaitable[tuple[float, float]]]


async def timed(fn: Callable[[], Awaitable[Any]], n: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per command over ``n`` commands."""
    cpu, wall = time.process_time(), time.perf_counter()
    await fn()
    return (
        (time.process_time() - cpu) / n * 1e6,
        (time.perf_counter() - wall) / n * 1e6,
    )


async def ours_ping(url: str, n: int) -> tuple[float, float]:
    wire = Wire(open_topology(Settings(url=url)))
    await wire.execute(Ping())

    async def run() -> None:
        for _ in range(n):
            await wire.execute(Ping())

    try:
        return await timed(run, n)
    finally:
        await wire.aclose()


async def raw_ping(url: str, n: int) -> tuple[float, float]:
    client = aioredis.from_url(url)
    await client.ping()

    async def run() -> None:
        for _ in range(n):
            await client.ping()

    try:
        return await timed(run, n)
    finally:
        await client.aclose()


async def ours_batches(url: str, n: int) -> tuple[float, float]:
    wire = Wire(open_topology(Settings(url=url)))
    batch = Batch(tuple(XAdd("wire:ours", FIELDS) for _ in range(1000)))

    async def run() -> None:
        for _ in range(n // 1000):
            await wire.execute(batch)

    try:
        return await timed(run, n)
    finally:
        await wire.aclose()


async def raw_batches(url: str, n: int) -> tuple[float, float]:
    client = aioredis.from_url(url)
    fields = {name: value for name, value in FIELDS}

    async def run() -> None:
        for _ in range(n // 1000):
            pipe = client.pipeline(transaction=False)
            for _ in range(1000):
                pipe.xadd("wire:raw", fields)  # type: ignore[arg-type]
            await pipe.execute()

    try:
        return await timed(run, n)
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--commands", type=int, default=20_000)
    args = parser.parse_args()
    n = args.commands
    cases: list[tuple[str, str, Measure]] = [
        ("PING sequential, redis.asyncio", "asyncio", raw_ping),
        ("PING sequential, ours", "asyncio", ours_ping),
        ("PING sequential, ours on trio", "trio", ours_ping),
        ("XADD batches of 1000, redis.asyncio pipeline", "asyncio", raw_batches),
        ("XADD batches of 1000, ours", "asyncio", ours_batches),
        ("XADD batches of 1000, ours on trio", "trio", ours_batches),
    ]
    with RedisServer() as server:
        results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in cases}
        for _ in range(args.rounds):  # interleaved, so drift hits every case alike
            for name, loop, fn in cases:
                results[name].append(anyio.run(fn, server.url, n, backend=loop))
    print(f"per command, median of {args.rounds} rounds of {n:,} ({server.version}):")
    for name, runs in results.items():
        cpu = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        print(f"  {name:<46} CPU {cpu:6.1f} µs   wall {wall:6.1f} µs")


if __name__ == "__main__":
    main()
