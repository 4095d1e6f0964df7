"""What a SyncRedisQueue call pays to reach the portal's loop, without Redis.

Times, per call, in one process: our ``Portal.call`` of a coroutine that
returns at once; the floor of any hand-over to a loop thread in CPython (a
plain function through ``call_soon_threadsafe``, the caller waiting on a
lock); and anyio's ``BlockingPortal.call`` of the same coroutine. Rounds
alternate the three; the medians are printed.

    python benchmarks/sync_hop.py [--calls 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

from abe_redis._sync.portal import Portal


async def nothing() -> int:
    return 1


def per_call_us(calls: int, one: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        one()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    portal = Portal()
    loop = portal.loop

    def floor() -> None:
        done = threading.Lock()
        done.acquire()
        loop.call_soon_threadsafe(done.release)
        done.acquire()

    ways: dict[str, Callable[[], object]] = {
        "Portal.call (ours)": lambda: portal.call(nothing),
        "call_soon_threadsafe + lock (the floor)": floor,
        "anyio BlockingPortal.call": lambda: portal.portal.call(nothing),
    }
    found: dict[str, list[float]] = {name: [] for name in ways}
    try:
        for _ in range(args.repeat):
            for name, one in ways.items():
                found[name].append(per_call_us(args.calls, one))
    finally:
        portal.close()
    for name, times in found.items():
        rounds = ", ".join(f"{t:.1f}" for t in times)
        print(f"{name:42} {statistics.median(times):6.1f} µs per call ({rounds})")


if __name__ == "__main__":
    main()
