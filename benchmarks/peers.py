"""Measure FastStream and taskiq-redis on our workloads; each runs in its own venv.

Usage: python peers.py faststream|taskiq URL EVENTS. Prints one JSON object:
sequential publish, publish from 50 tasks, consume+ack (and, for FastStream,
its batch mode), in events per second. bench.py installs each library in a
venv of its own (``faststream[redis]``; ``taskiq-redis``) and runs this
script there; our package is not installed in those venvs.

* FastStream: ``RedisBroker.publish(..., stream=...)``; consuming is a
  ``StreamSub`` group subscriber (one message per call, and ``batch=True``
  with ``max_records=500``), acknowledged by FastStream after each handler.
  Its per-message log lines are off (``logger=None``): we measure the queue,
  not the logging, and ours logs nothing per message either.
* taskiq-redis: ``RedisStreamBroker``; publishing is ``task.kiq(event)``;
  consuming is the broker's ``listen()`` (XREADGROUP of 100 by default, the
  path a taskiq worker reads with), the message decoded from JSON and acked.
  A worker adds its own task dispatch on top, so this is taskiq's floor.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from slack_event import event


async def rate_of(n: int, run: Any) -> float:
    start = time.perf_counter()
    await run()
    return n / (time.perf_counter() - start)


async def fifty_tasks(n: int, publish: Any) -> None:
    async def part(k: int) -> None:
        for i in range(k, n, 50):
            await publish(event(i))

    await asyncio.gather(*(part(k) for k in range(50)))


async def faststream(url: str, n: int) -> dict[str, float]:
    from faststream.redis import RedisBroker

    out: dict[str, float] = {}
    broker = RedisBroker(url, logger=None)
    await broker.connect()

    async def sequential() -> None:
        for i in range(n):
            await broker.publish(event(i), stream="bench:fs-seq")

    out["publish_sequential"] = await rate_of(n, sequential)
    out["publish_50_tasks"] = await rate_of(
        n, lambda: fifty_tasks(n, lambda e: broker.publish(e, stream="bench:fs-50"))
    )
    # The consumed streams are filled with FastStream's own messages.
    for stream in ("bench:fs-consume", "bench:fs-batch"):
        await fifty_tasks(n, lambda e, s=stream: broker.publish(e, stream=s))
    await broker.stop()

    out["consume"] = await faststream_consume(url, "bench:fs-consume", n, batch=False)
    out["consume_batch"] = await faststream_consume(url, "bench:fs-batch", n, batch=True)

    cleanup = RedisBroker(url, logger=None)
    await cleanup.connect()
    redis = cleanup._connection  # its redis.asyncio client
    if redis is not None:
        await redis.delete("bench:fs-seq", "bench:fs-50", "bench:fs-consume", "bench:fs-batch")
    await cleanup.stop()
    return out


async def faststream_consume(url: str, stream: str, n: int, *, batch: bool) -> float:
    from faststream.redis import RedisBroker, StreamSub

    got = 0
    done = asyncio.Event()
    consumer = RedisBroker(url, logger=None)
    sub = StreamSub(stream, group="bench", consumer="c1", last_id="0", batch=batch,
                    max_records=500 if batch else None)  # fmt: skip

    @consumer.subscriber(stream=sub)
    async def handle(body: Any) -> None:
        nonlocal got
        got += len(body) if batch else 1
        if got >= n:
            done.set()

    start = time.perf_counter()
    await consumer.start()
    await done.wait()
    rate = n / (time.perf_counter() - start)
    await consumer.stop()
    return rate


async def taskiq(url: str, n: int) -> dict[str, float]:
    from taskiq_redis import RedisStreamBroker

    out: dict[str, float] = {}

    def make(queue: str) -> Any:
        return RedisStreamBroker(
            url, queue_name=queue, consumer_group_name="bench", consumer_id="0"
        )

    async def work(payload: dict[str, Any]) -> None:
        pass

    for mode, queue in (
        ("publish_sequential", "bench:tq-seq"),
        ("publish_50_tasks", "bench:tq-50"),
    ):
        broker = make(queue)
        task = broker.register_task(work, task_name="work")
        await broker.startup()

        async def sequential(task: Any = task) -> None:
            for i in range(n):
                await task.kiq(event(i))

        if mode == "publish_sequential":
            out[mode] = await rate_of(n, sequential)
        else:
            out[mode] = await rate_of(n, lambda task=task: fifty_tasks(n, task.kiq))
        await broker.shutdown()

    broker = make("bench:tq-50")  # consume what the 50 tasks published
    await broker.startup()
    got = 0
    start = time.perf_counter()
    async for message in broker.listen():
        json.loads(message.data)
        await message.ack()
        got += 1
        if got >= n:
            break
    out["consume"] = n / (time.perf_counter() - start)
    await broker.shutdown()

    from redis.asyncio import Redis

    async with Redis.from_url(url) as redis:
        await redis.delete("bench:tq-seq", "bench:tq-50")
    return out


if __name__ == "__main__":
    which, url, events = sys.argv[1], sys.argv[2], int(sys.argv[3])
    run = {"faststream": faststream, "taskiq": taskiq}[which]
    print(json.dumps(asyncio.run(run(url, events))))
