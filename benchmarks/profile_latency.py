"""Where end-to-end latency goes: the wire against the consumer's own code.

Splits each event's latency (publisher's stamp to the handler) at the moment
its bytes reached the consuming process: *wire* is the publisher, Redis and
the wake-up of the consumer's event loop (no consumer code has run yet);
*in process* is the consumer's code from those bytes to the handler. The
same raw publisher process feeds both consumers, ours and the raw client's
(XREADGROUP BLOCK + XACK + JSON), in alternating runs (each side first in
every other round), so the only difference is the consumer. Prints the
percentiles of each part per run and the medians over runs.

The arrival time comes from asyncio's socket transport (a private hook on
its read callback), so this runs on asyncio only.

    python benchmarks/profile_latency.py [--rate 200] [--seconds 3] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio.selector_events
import statistics
import time
from collections.abc import Callable
from typing import Any

import anyio
from bench import alternating, latency, percentile

from abe_redis.embedded import RedisServer

PARTS = ("wire", "in process", "total")
POINTS = (50, 90, 99)


class ArrivalClock:
    """Notes when bytes last reached any asyncio socket transport in this process."""

    def __init__(self) -> None:
        self.last = 0.0
        transport: Any = getattr(asyncio.selector_events, "_SelectorSocketTransport", None)
        for name in ("_read_ready__data_received", "_read_ready__get_buffer"):
            if transport is None or not hasattr(transport, name):
                raise SystemExit(f"this Python's asyncio has no {name}; cannot time arrivals")
            setattr(transport, name, self._stamped(getattr(transport, name)))

    def _stamped(self, read_ready: Callable[[Any], None]) -> Callable[[Any], None]:
        def stamped(transport: Any) -> None:
            self.last = time.monotonic()
            read_ready(transport)

        return stamped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    clock = ArrivalClock()
    # side -> part -> percentile -> one figure per run (ms)
    figures: dict[str, dict[str, dict[int, list[float]]]] = {
        side: {part: {p: [] for p in POINTS} for part in PARTS} for side in ("raw", "ours")
    }
    with RedisServer() as server:
        print(
            f"{args.rate:.0f} events/s for {args.seconds:.0f} s, raw publisher process, "
            f"consumers alternating, each first in every other round; ms"
        )
        for round_no in range(args.repeat):
            for side in alternating(figures, round_no):
                parts = figures[side]
                samples: dict[str, list[float]] = {part: [] for part in PARTS}

                def split(sent: float, samples: dict[str, list[float]] = samples) -> None:
                    now, arrived = time.monotonic(), clock.last
                    samples["wire"].append((arrived - sent) * 1000)
                    samples["in process"].append((now - arrived) * 1000)
                    samples["total"].append((now - sent) * 1000)

                anyio.run(latency, server.url, args.rate, args.seconds, side, "raw", split)
                line = []
                for part, values in samples.items():
                    shown = [percentile(values, p) for p in POINTS]
                    for p, figure in zip(POINTS, shown, strict=True):
                        parts[part][p].append(figure)
                    line.append(f"{part} " + "/".join(f"{f:.3f}" for f in shown))
                print(f"  {side:<4} p50/p90/p99: " + "   ".join(line), flush=True)
        print(f"\nmedians of {args.repeat} runs, p50 / p90 / p99:")
        for side, parts in figures.items():
            line = [
                f"{part} " + " / ".join(f"{statistics.median(parts[part][p]):.3f}" for p in POINTS)
                for part in PARTS
            ]
            print(f"  {side:<4} " + "   ".join(line))


if __name__ == "__main__":
    main()
