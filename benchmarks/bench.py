"""Side-by-side benchmark: abe-redis vs the raw redis-py client vs the old plugin.

Starts its own redis-server, runs every workload on the same Slack-like
events (about 300 bytes), repeats the throughput runs and prints medians
with the ratios the performance targets are stated in, beside FastStream,
taskiq-redis and abe-redis 0.1.0, each measured in its own venv in the same
run. Everything runs in two placements: ``shared`` (Redis and the clients on
one CPU) and ``split`` (Redis on one CPU, the clients on the other, as with
Redis on another host). It prints figures; it asserts nothing about timings.

    python benchmarks/bench.py [--events 20000] [--repeat 3] [--backlog 1000000]
                               [--placements shared,split] [--skip-peers]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import anyio
import redis
import redis.asyncio as aioredis
import venvs

from abe_redis import RedisMessageQueueBackend, Settings, SyncRedisQueue
from abe_redis.cli import slack_event
from abe_redis.embedded import RedisServer

HERE = Path(__file__).resolve().parent
EVENTS = [slack_event(i) for i in range(1000)]


def ev(i: int) -> dict[str, Any]:
    return EVENTS[i % len(EVENTS)]


REGISTRY = "bench:streams"  # also in the child scripts below


def settings(url: str, **kw: Any) -> Settings:
    return Settings(url=url, registry_key=REGISTRY, **kw)


# -- raw redis-py: the limit --------------------------------------------------


async def raw_publish_sequential(url: str, n: int) -> float:
    r = aioredis.from_url(url)
    start = time.perf_counter()
    for i in range(n):
        await r.xadd("bench:raw", {"data": json.dumps(ev(i))})
    rate = n / (time.perf_counter() - start)
    await r.delete("bench:raw")
    await r.aclose()
    return rate


async def raw_publish_pipelined(url: str, n: int) -> float:
    r = aioredis.from_url(url)
    start = time.perf_counter()
    for at in range(0, n, 1000):
        pipe = r.pipeline(transaction=False)
        for i in range(at, min(n, at + 1000)):
            pipe.xadd("bench:raw", {"data": json.dumps(ev(i))})
        await pipe.execute()
    rate = n / (time.perf_counter() - start)
    await r.delete("bench:raw")
    await r.aclose()
    return rate


def fill(url: str, stream: str, n: int, *, register: bool = True) -> None:
    """Pre-publish ``n`` events with the blocking client (works under any loop).

    ``register`` adds the stream to the registry our consumers read; the raw
    client's streams stay out of it, or our consumers would read those too.
    """
    with redis.Redis.from_url(url) as r:
        data = [json.dumps(ev(i)) for i in range(len(EVENTS))]
        for at in range(0, n, 5000):
            pipe = r.pipeline(transaction=False)
            for i in range(at, min(n, at + 5000)):
                pipe.xadd(stream, {"data": data[i % len(data)]})
            pipe.execute()
        if register:
            r.sadd("bench:streams", stream)


async def raw_drain(url: str, n: int) -> float:
    wall, _ = await raw_drain_timed(url, n)
    return n / wall


async def raw_drain_timed(url: str, n: int) -> tuple[float, float]:
    """The raw client's drain of ``n`` events: (wall seconds, CPU seconds)."""
    fill(url, "bench:raw-drain", n, register=False)
    r = aioredis.from_url(url)
    await r.xgroup_create("bench:raw-drain", "g", "0")
    got = 0
    cpu, start = time.process_time(), time.perf_counter()
    while got < n:
        reply: Any = await r.xreadgroup("g", "c", {"bench:raw-drain": ">"}, count=500)
        ids = []
        for _, entries in reply:
            for entry_id, fields in entries:
                json.loads(fields[b"data"])
                ids.append(entry_id)
        got += len(ids)
        await r.xack("bench:raw-drain", "g", *ids)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - start
    await r.delete("bench:raw-drain")
    await r.aclose()
    return wall, cpu


# -- ours -------------------------------------------------------------------


async def ours_publish_sequential(url: str, n: int) -> float:
    async with RedisMessageQueueBackend(settings(url)) as b:
        await b.publish("bench:ours", ev(0))
        start = time.perf_counter()
        for i in range(n):
            await b.publish("bench:ours", ev(i))
        rate = n / (time.perf_counter() - start)
        await b.delete_stream("bench:ours")
    return rate


async def ours_publish_concurrent(url: str, n: int) -> float:
    async with RedisMessageQueueBackend(settings(url)) as b:
        await b.publish("bench:ours", ev(0))

        async def part(k: int) -> None:
            for i in range(k, n, 50):
                await b.publish("bench:ours", ev(i))

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for k in range(50):
                tg.start_soon(part, k)
        rate = n / (time.perf_counter() - start)
        assert await b.stream_length("bench:ours") == n + 1
        await b.delete_stream("bench:ours")
    return rate


async def ours_publish_many(url: str, n: int) -> float:
    async with RedisMessageQueueBackend(settings(url)) as b:
        payloads = [ev(i) for i in range(n)]
        start = time.perf_counter()
        await b.publish_many("bench:ours", payloads)
        rate = n / (time.perf_counter() - start)
        await b.delete_stream("bench:ours")
    return rate


async def ours_consume(
    url: str, n: int, workers: int = 1, json_choice: str = "auto", read_ahead: bool = True
) -> float:
    await anyio.to_thread.run_sync(fill, url, "bench:consume", n)
    config = settings(url, prefetch=500, json=json_choice, read_ahead=read_ahead)
    async with RedisMessageQueueBackend(config) as b:
        rate = await drain(b, n, workers)
        await b.delete_stream("bench:consume")
    return rate


async def drain(backend: RedisMessageQueueBackend, n: int, workers: int) -> float:
    """``workers`` consumers of group ``bench`` take ``n`` events; events a second."""
    got = 0
    done = anyio.Event()

    async def worker() -> None:
        nonlocal got
        async with backend.consume(group="bench") as events:
            async for _ in events:
                got += 1
                if got >= n:
                    done.set()
                if done.is_set():
                    break

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)
        await done.wait()
        rate = n / (time.perf_counter() - start)
        tg.cancel_scope.cancel()
    return rate


def sync_publish_sequential(url: str, n: int) -> float:
    with SyncRedisQueue(settings(url)) as q:
        q.publish("bench:sync", ev(0))
        start = time.perf_counter()
        for i in range(n):
            q.publish("bench:sync", ev(i))
        rate = n / (time.perf_counter() - start)
        q.delete_stream("bench:sync")
    return rate


def sync_consume(url: str, n: int) -> float:
    fill(url, "bench:consume", n)
    with SyncRedisQueue(settings(url, prefetch=500)) as q:
        start = time.perf_counter()
        with q.consume(group="bench") as events:
            for got, _ in enumerate(events, 1):
                if got == n:
                    break
        rate = n / (time.perf_counter() - start)
        q.delete_stream("bench:consume")
    return rate


LATENCY_PUBLISHER = textwrap.dedent(
    """
    import json, sys, time, anyio, redis.asyncio
    from abe_redis import RedisMessageQueueBackend, Settings
    from abe_redis.cli import slack_event

    async def main(url, stream, rate, seconds, side):
        n = int(rate * seconds)
        per_tick = max(1, int(rate / 1000))  # above 1000/s: one batch per ms
        events = [slack_event(i) for i in range(1000)]
        backend = RedisMessageQueueBackend(Settings(url=url, registry_key="bench:streams"))
        raw = redis.asyncio.from_url(url)
        # Connect (and register our stream) before the clock starts. The raw
        # side's stream stays out of the registry our consumers read.
        if side == "ours":
            await backend.publish(stream, {"warm": True})
        else:
            await raw.ping()
        start = time.monotonic()
        for i in range(0, n, per_tick):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
            sent = time.monotonic()
            batch = [{**events[j % 1000], "sent": sent} for j in range(i, min(n, i + per_tick))]
            if side == "ours":
                if len(batch) == 1:
                    await backend.publish(stream, batch[0])
                else:
                    await backend.publish_many(stream, batch)
            else:
                pipe = raw.pipeline(transaction=False)
                for payload in batch:
                    pipe.xadd(stream, {"data": json.dumps(payload)})
                await pipe.execute()
        print(n / (time.monotonic() - start))
        await backend.aclose()
        await raw.aclose()

    anyio.run(main, sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    """
)


async def latency(
    url: str,
    rate: float,
    seconds: float,
    side: str,
    publisher_side: str | None = None,
    on_event: Callable[[float], None] | None = None,
) -> tuple[list[float], float]:
    """End-to-end latency: a publisher process at ``rate`` for ``seconds``, a
    consumer here. ``side`` is ``ours`` (our publish and consume) or ``raw``
    (redis-py XADD, and XREADGROUP BLOCK + XACK + JSON: the floor).
    ``publisher_side`` picks the publisher apart from the consumer;
    ``on_event(sent)`` is called as each event reaches the consumer.

    Returns the latencies in ms and the rate the publisher achieved.
    """
    n = int(rate * seconds)
    stream = f"bench:latency-{side}"
    seen: list[float] = []
    publisher = [sys.executable, "-c", LATENCY_PUBLISHER, url, stream, str(rate), str(seconds)]
    publisher.append(publisher_side or side)
    if side == "ours":
        # The default prefetch (64): a batch of 500 takes ~10 ms to hand out
        # here, which shows up as latency when the consumer falls behind.
        async with RedisMessageQueueBackend(settings(url, block_ms=1000)) as b:
            await b.publish(stream, {"warm": True})
            async with b.consume(group="lat") as events:
                await events.__anext__()
                child = subprocess.Popen(publisher, stdout=subprocess.PIPE, text=True)
                async for event in events:
                    if "sent" in event:
                        seen.append((time.monotonic() - event["sent"]) * 1000)
                        if on_event is not None:
                            on_event(event["sent"])
                        if len(seen) == n:
                            break
            await b.delete_stream(stream)
    else:
        r = aioredis.from_url(url)
        await r.delete(stream)
        await r.xgroup_create(stream, "lat", "$", mkstream=True)
        child = subprocess.Popen(publisher, stdout=subprocess.PIPE, text=True)
        while len(seen) < n:
            reply: Any = await r.xreadgroup("lat", "c", {stream: ">"}, count=500, block=1000)
            ids = []
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    payload = json.loads(fields[b"data"])
                    if "sent" in payload:  # not the warm-up entry of our publisher
                        seen.append((time.monotonic() - payload["sent"]) * 1000)
                        if on_event is not None:
                            on_event(payload["sent"])
                    ids.append(entry_id)
            if ids:
                await r.xack(stream, "lat", *ids)
        await r.delete(stream)
        # Our publisher registers the stream; our consumers must not find it.
        await r.srem(REGISTRY, stream)
        await r.aclose()
    out, _ = child.communicate(timeout=60)
    return seen, float(out.strip().splitlines()[-1])


def alternating(sides: Iterable[str], round_no: int) -> list[str]:
    """The sides in order in even rounds, reversed in odd ones."""
    ordered = list(sides)
    return ordered if round_no % 2 == 0 else ordered[::-1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


RSS_CHILD = textwrap.dedent(
    """
    import resource, sys, time, anyio
    from abe_redis import RedisMessageQueueBackend, Settings

    async def main(url, n):
        s = Settings(url=url, registry_key="bench:streams", prefetch=500)
        got = 0
        start = time.perf_counter()
        async with RedisMessageQueueBackend(s) as b:
            async with b.consume(group="rss") as events:
                async for _ in events:
                    got += 1
                    if got == n:
                        break
        took = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{peak:.1f} {n / took:.0f}")

    anyio.run(main, sys.argv[1], int(sys.argv[2]))
    """
)


def backlog_rss(url: str, backlog: int) -> tuple[float, float]:
    fill(url, "bench:backlog", backlog)
    out = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, url, str(backlog)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    redis.Redis.from_url(url).delete("bench:backlog")
    return float(out[0]), float(out[1])


# -- the run ------------------------------------------------------------------


def on(backend: str, fn: Callable[..., Awaitable[float]], *args: Any) -> Callable[[], float]:
    return lambda: anyio.run(fn, *args, backend=backend)


PLACEMENTS = {
    # name: (CPUs of redis-server, CPUs of the clients)
    "shared": ("0", "0"),  # one core for everything
    "split": ("0", "1"),  # Redis on one core, the clients on the other, as with a remote Redis
}
SEQ = "ours publish sequential"
CONS = "ours consume+ack, 1 worker"
DRAIN = "raw XREADGROUP+XACK+JSON drain"
PEER_COLUMNS = {
    "publish sequential": (SEQ, "publish_sequential"),
    "publish, 50 tasks": ("ours publish, 50 tasks", "publish_50_tasks"),
    "consume+ack, 1 worker": (CONS, "consume_1_worker"),
}


PeerRuns = dict[str, list[dict[str, float] | str]]


def throughput(
    url: str, n: int, repeat: int, peer_names: Iterable[str] = ()
) -> tuple[dict[str, list[float]], PeerRuns]:
    workloads: list[tuple[str, Callable[[], float]]] = [
        # Each workload runs right after the one it is compared with.
        ("raw XADD sequential", on("asyncio", raw_publish_sequential, url, n)),
        (SEQ, on("asyncio", ours_publish_sequential, url, n)),
        ("ours publish sequential (trio)", on("trio", ours_publish_sequential, url, n)),
        ("SyncRedisQueue publish sequential", lambda: sync_publish_sequential(url, n)),
        ("raw XADD pipelined", on("asyncio", raw_publish_pipelined, url, n)),
        ("ours publish, 50 tasks", on("asyncio", ours_publish_concurrent, url, n)),
        ("ours publish_many", on("asyncio", ours_publish_many, url, n)),
        (DRAIN, on("asyncio", raw_drain, url, n)),
        (CONS, on("asyncio", ours_consume, url, n, 1)),
        (
            "ours consume+ack, 1 worker, stdlib json",
            on("asyncio", ours_consume, url, n, 1, "stdlib"),
        ),
        ("ours consume+ack, 1 worker (trio)", on("trio", ours_consume, url, n, 1)),
        ("SyncRedisQueue consume+ack", lambda: sync_consume(url, n)),
        ("ours consume+ack, 4 workers", on("asyncio", ours_consume, url, n, 4)),
    ]
    # Rounds interleave the workloads, so drift in a shared machine's speed
    # hits ours and the raw client alike.
    runs: dict[str, list[float]] = {name: [] for name, _ in workloads}
    # Each peer runs once per round too, after ours, so its ratios are paired
    # by round like the raw client's.
    peer_runs: PeerRuns = {name: [] for name in peer_names}
    for _ in range(repeat):
        for name, fn in workloads:
            runs[name].append(fn())
        for name, measured in peer_runs.items():
            measured.append(venvs.run(name, url, n))
    return runs, peer_runs


def latencies(url: str, repeat: int) -> dict[str, list[float]]:
    lat: dict[str, list[float]] = {}
    for rate, seconds in ((200, 3.0), (20_000, 1.0)):
        # Raw and ours alternate, each going first in every other round.
        by_side: dict[str, list[tuple[list[float], float]]] = {"raw": [], "ours": []}
        for round_no in range(repeat):
            for side in alternating(by_side, round_no):
                by_side[side].append(anyio.run(latency, url, float(rate), seconds, side))
        for side, runs_lat in by_side.items():
            # The run with the median p99 stands for the workload.
            p99s = ", ".join(f"{percentile(run[0], 99):.2f}" for run in runs_lat)
            runs_lat.sort(key=lambda run: percentile(run[0], 99))
            samples, achieved = runs_lat[len(runs_lat) // 2]
            figures = [percentile(samples, p) for p in (50, 90, 99)] + [max(samples)]
            lat[f"{side} {rate}"] = figures
            p50, p90, p99, worst = figures
            print(
                f"    {side:<4} at {rate:>6}/s (achieved {achieved:,.0f}/s): p50 {p50:.2f}  "
                f"p90 {p90:.2f}  p99 {p99:.2f}  max {worst:.2f}  "
                f"({len(samples)} events; p99 of each run: {p99s})",
                flush=True,
            )
    return lat


def peers(peer_runs: PeerRuns) -> dict[str, list[dict[str, float]] | str]:
    """Each peer's rounds (or why it could not be measured), printed with medians."""
    out: dict[str, list[dict[str, float]] | str] = {}
    for name, attempts in peer_runs.items():
        failed = [a for a in attempts if isinstance(a, str)]
        if failed:
            out[name] = failed[0]
            print(f"    {name}: not measured: {failed[0]}", flush=True)
            continue
        rounds = [dict(a) for a in attempts if isinstance(a, dict)]
        for measured in rounds:
            if "consume" in measured:
                measured["consume_1_worker"] = measured.pop("consume")
        out[name] = rounds
        shown = ", ".join(f"{k} {statistics.median(r[k] for r in rounds):,.0f}" for k in rounds[0])
        print(f"    {name} {venvs.installed(name)}: {shown}", flush=True)
    return out


def report(
    placement: str,
    runs: dict[str, list[float]],
    lat: dict[str, list[float]],
    rss: float | None,
    peer: dict[str, list[dict[str, float]] | str],
) -> None:
    med = {name: statistics.median(values) for name, values in runs.items()}

    def paired(ours: str, base: str) -> str:
        each = [a / b for a, b in zip(runs[ours], runs[base], strict=True)]
        shown = ", ".join(f"{r:.2f}" for r in each)
        return f"{statistics.median(each):.2f}x ({shown})"

    def over(peer_name: str, key: str, ours: str) -> str:
        rounds = peer.get(peer_name)
        if not isinstance(rounds, list) or not all(r.get(key) for r in rounds):
            return "n/a"
        each = [a / r[key] for a, r in zip(runs[ours], rounds, strict=True)]
        shown = ", ".join(f"{x:.2f}" for x in each)
        return f"{statistics.median(each):.2f}x ({shown})"

    def lat_fig(rate: str) -> str:
        ours, raw = lat["ours " + rate][2], lat["raw " + rate][2]
        return f"{ours:.2f} ms, raw {raw:.2f} ms: {ours / raw:.2f}x raw"

    rows = [
        ("publish sequential", "ours / raw XADD", paired(SEQ, "raw XADD sequential")),
        (
            "publish, 50 tasks",
            "ours / raw pipelined",
            paired("ours publish, 50 tasks", "raw XADD pipelined"),
        ),
        ("consume+ack, 1 worker", "ours / raw drain", paired(CONS, DRAIN)),
        (
            "  the same, stdlib json",
            "ours / raw drain",
            paired("ours consume+ack, 1 worker, stdlib json", DRAIN),
        ),
        ("trio vs asyncio", "publish", paired("ours publish sequential (trio)", SEQ)),
        ("trio vs asyncio", "consume", paired("ours consume+ack, 1 worker (trio)", CONS)),
        ("SyncRedisQueue vs async", "publish", paired("SyncRedisQueue publish sequential", SEQ)),
        ("SyncRedisQueue vs async", "consume", paired("SyncRedisQueue consume+ack", CONS)),
        ("latency p99 at 200/s", "ours (raw)", lat_fig("200")),
        ("latency p99 at 20000/s", "ours (raw)", lat_fig("20000")),
        ("RSS, 1M backlog", "MB", "n/a" if rss is None else f"{rss:.1f}"),
    ]
    for workload, (ours, key) in PEER_COLUMNS.items():
        for name in venvs.PEERS:
            rows.append((workload, f"ours / {name}", over(name, key, ours)))
    rows.append(
        ("consume+ack", "ours / FastStream batch", over("FastStream", "consume_batch", CONS))
    )
    print(f"\n  ratios, placement {placement!r} (paired: median of per-round ratios, rounds after)")
    for workload, what, figure in rows:
        print(f"  {workload:<26} {what:<26} {figure}")
    old = peer.get("old plugin")
    if isinstance(old, list):
        errors = ", ".join(f"{r['publish_50_tasks_errors']:.0f}" for r in old)
        print(f"  old plugin errors with 50 concurrent publishers, per round: {errors}")
    print(
        f"  ours, 4 workers / 1 worker: {med['ours consume+ack, 4 workers'] / med[CONS]:.2f}x; "
        f"publish_many: {med['ours publish_many']:,.0f}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--skip-peers", action="store_true", help="do not measure the peers")
    parser.add_argument(
        "--placements", default="shared,split", help="comma-separated: shared, split"
    )
    args = parser.parse_args()
    n, repeat = args.events, args.repeat
    cpus = sorted(os.sched_getaffinity(0))
    wanted = [p.strip() for p in args.placements.split(",") if p.strip()]
    if "split" in wanted and len(cpus) < 2:
        print("  placement 'split' needs two CPUs; skipped")
        wanted.remove("split")
    print(
        f"abe-redis benchmark: Python {sys.version.split()[0]}, redis-py {redis.__version__} "
        f"(the raw client), hiredis, "
        f"orjson {'yes' if importlib.util.find_spec('orjson') else 'no'} "
        f"(REDIS_JSON=auto), {len(cpus)} CPUs, {n} events of ~{len(json.dumps(ev(0)))} bytes, "
        f"median of {repeat} rounds; placements: {', '.join(wanted)}"
    )
    for placement in wanted:
        redis_cpu, client_cpu = PLACEMENTS[placement]
        # This process and everything it starts (publishers, peers) run on the
        # clients' CPU; redis-server on its own.
        os.sched_setaffinity(0, {cpus[int(client_cpu)]})
        try:
            with RedisServer(cpus=str(cpus[int(redis_cpu)])) as server:
                url = server.url
                print(
                    f"\n== placement {placement!r}: redis-server {server.version} on CPU "
                    f"{cpus[int(redis_cpu)]}, clients on CPU {cpus[int(client_cpu)]}",
                    flush=True,
                )
                runs, peer_runs = throughput(url, n, repeat, () if args.skip_peers else venvs.PEERS)
                for name, values in runs.items():
                    shown = ", ".join(f"{v:,.0f}" for v in values)
                    print(f"  {name:<40} {statistics.median(values):>12,.0f}/s   runs: {shown}")
                print("\n  end-to-end latency (publisher process -> handler), ms:", flush=True)
                lat = latencies(url, repeat)
                rss = None
                if args.backlog:
                    rss, drain_rate = backlog_rss(url, args.backlog)
                    print(
                        f"\n  consumer peak RSS draining a {args.backlog:,}-event backlog: "
                        f"{rss:.1f} MB ({drain_rate:,.0f}/s)",
                        flush=True,
                    )
                peer: dict[str, list[dict[str, float]] | str] = {}
                if peer_runs:
                    print(
                        "\n  peers, each in its own venv, run in every round after ours (medians):",
                        flush=True,
                    )
                    peer = peers(peer_runs)
                report(placement, runs, lat, rss, peer)
        finally:
            os.sched_setaffinity(0, set(cpus))


if __name__ == "__main__":
    main()
