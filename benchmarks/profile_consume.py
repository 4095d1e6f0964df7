"""Where consume time goes: CPU per message, ours against the raw client.

Wall-clock rates on a shared machine move by a third between runs; the CPU
time the consuming process spends per message moves far less, and it says
how much of a gap is our own code. Starts its own redis-server, drains the
same backlog with the raw client (XREADGROUP COUNT 500 + XACK + JSON) and
with our consumer (prefetch 500), interleaved, and prints the medians.
``--profile`` adds a cProfile of one of our drains (the top functions by
own time).

    python benchmarks/profile_consume.py [--events 50000] [--repeat 5] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable

import anyio
from bench import fill, raw_drain_timed, settings

from abe_redis import RedisMessageQueueBackend
from abe_redis.embedded import RedisServer

Drain = Callable[[str, int], Awaitable[tuple[float, float]]]


async def ours(url: str, n: int, profiler: cProfile.Profile | None = None) -> tuple[float, float]:
    """Our consumer's drain: (wall seconds, CPU seconds)."""
    fill(url, "bench:consume", n)
    async with RedisMessageQueueBackend(settings(url, prefetch=500)) as backend:
        got = 0
        if profiler is not None:
            profiler.enable()
        cpu, wall = time.process_time(), time.perf_counter()
        async with backend.consume(group="bench") as events:
            async for _ in events:
                got += 1
                if got >= n:
                    break
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if profiler is not None:
            profiler.disable()
        await backend.delete_stream("bench:consume")
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    n = args.events
    sides: dict[str, Drain] = {"raw": raw_drain_timed, "ours": ours}
    walls: dict[str, list[float]] = {name: [] for name in sides}
    cpus: dict[str, list[float]] = {name: [] for name in sides}
    with RedisServer() as server:
        for _ in range(args.repeat):
            for name, drain in sides.items():
                wall, cpu = anyio.run(drain, server.url, n)
                walls[name].append(n / wall)
                cpus[name].append(cpu / n * 1e6)
        print(f"{n} events, median of {args.repeat} interleaved runs (asyncio)")
        for name in sides:
            rates = ", ".join(f"{r:,.0f}" for r in walls[name])
            print(
                f"  {name:<5} {statistics.median(walls[name]):>9,.0f}/s  "
                f"CPU {statistics.median(cpus[name]):5.2f} µs/message   runs: {rates}"
            )
        ratio = statistics.median(cpus["raw"]) / statistics.median(cpus["ours"])
        print(f"  raw CPU / ours CPU per message: {ratio:.2f}")
        if args.profile:
            profiler = cProfile.Profile()
            anyio.run(ours, server.url, n, profiler)
            print("\nour drain under cProfile (slower than unprofiled), top functions by own time:")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
