"""Measure abe-redis 0.1.0 (the old plugin) on the same workloads; run in its own venv.

Usage: python old_plugin.py URL EVENTS. Prints one JSON object. It is run by
bench.py with the old plugin installed in a separate Python 3.12 venv,
because both packages are called abe-redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import redis.asyncio as aioredis
from slack_event import event


async def main(url: str, n: int) -> dict[str, float]:
    os.environ["REDIS_URL"] = url
    # Its default MAXLEN of 10000 would trim the events we measure.
    os.environ["REDIS_STREAM_MAXLEN"] = str(10 * n)
    from abe_plugin.backends.message_queue.service.redis import RedisMessageQueueBackend

    out: dict[str, float] = {}
    raw = aioredis.from_url(url)
    backend = RedisMessageQueueBackend.from_env()

    stream = "slack:bench:old-seq"
    start = time.perf_counter()
    for i in range(n):
        await backend.publish(stream, event(i))
    out["publish_sequential"] = n / (time.perf_counter() - start)
    await raw.delete(stream)

    stream = "slack:bench:old-50"
    errors = 0

    async def part(k: int) -> None:
        nonlocal errors
        for i in range(k, n, 50):
            try:
                await backend.publish(stream, event(i))
            except Exception:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(part(k) for k in range(50)))
    # Only publishes that succeeded count; the failed ones are reported apart.
    out["publish_50_tasks"] = (n - errors) / (time.perf_counter() - start)
    out["publish_50_tasks_errors"] = errors
    await raw.delete(stream)

    stream = "slack:bench:old-consume"
    pipe = raw.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(stream, {"data": json.dumps(event(i))})
    await pipe.execute()
    got = 0
    start = time.perf_counter()
    agen = backend.consume(group="bench-old")
    async for _ in agen:
        got += 1
        if got == n:
            break
    out["consume_1_worker"] = n / (time.perf_counter() - start)
    await agen.aclose()
    await raw.delete(stream)
    await backend.close()
    await raw.aclose()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2])))))
