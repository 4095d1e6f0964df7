"""Consume + ack with read-ahead on and off, against the raw drain, in one placement.

Starts its own redis-server pinned to CPU 0; the clients run on CPU 0
(``shared``) or CPU 1 (``split``). Each round drains the same backlog with
the raw client, then ours with ``REDIS_READ_AHEAD=true``, then with it
off; ratios are taken within each round and their medians printed.

    python benchmarks/read_ahead.py [shared|split] [--events 30000] [--repeat 6]
"""

from __future__ import annotations

import argparse
import os
import statistics

import anyio
from bench import ours_consume, raw_drain

from abe_redis.embedded import RedisServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("placement", nargs="?", choices=("shared", "split"), default="shared")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=6)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0] if args.placement == "shared" else cpus[1]})
    on: list[float] = []
    off: list[float] = []
    with RedisServer(cpus=str(cpus[0])) as server:
        for round_ in range(args.repeat):
            raw = anyio.run(raw_drain, server.url, args.events)
            with_it = anyio.run(ours_consume, server.url, args.events, 1, "auto", True)
            without = anyio.run(ours_consume, server.url, args.events, 1, "auto", False)
            on.append(with_it / raw)
            off.append(without / raw)
            print(
                f"round {round_ + 1}: raw {raw:,.0f}/s, read-ahead on {with_it:,.0f}/s "
                f"({on[-1]:.2f}x), off {without:,.0f}/s ({off[-1]:.2f}x)",
                flush=True,
            )
    print(
        f"{args.placement}: read-ahead on {statistics.median(on):.2f}x raw, "
        f"off {statistics.median(off):.2f}x raw (medians of {args.repeat} rounds)"
    )


if __name__ == "__main__":
    main()
