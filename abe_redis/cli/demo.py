"""``abe-redis demo``: the main job, on an embedded server when none is configured.

The demo publishes a burst of Slack-like events, then consumes them with
several workers of one consumer group through the same entry point the
hosts load, and prints what happened and how fast. With no ``REDIS_URL`` it
starts a throwaway ``redis-server`` (or, without that binary, uses fakeredis
in process), so it runs on a fresh machine.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio

from .. import __version__
from .._async.backend import RedisMessageQueueBackend
from ..config import redact_url
from ..embedded import RedisServer, fake_server, redis_server_binary

DEMO_STREAM = "abe_redis_demo:slack_events"
DEMO_REGISTRY = "abe_redis_demo:streams"
DEMO_GROUP = "abe-redis-demo"


def slack_event(i: int) -> dict[str, Any]:
    """A Slack Events API callback of the usual size (about 300 bytes)."""
    return {
        "token": "demo-verification-token",
        "team_id": "T0DEMO0001",
        "api_app_id": "A0DEMO0001",
        "type": "event_callback",
        "event_id": f"Ev{i:010d}",
        "event_time": 1_700_000_000 + i,
        "event": {
            "type": "message",
            "channel": "C0DEMO0001",
            "user": "U0DEMO0001",
            "text": f"hello from the abe-redis demo, message {i}",
            "ts": f"{1_700_000_000 + i}.000100",
        },
    }


@contextlib.contextmanager
def demo_target(url: str | None) -> Iterator[tuple[str, str]]:
    """Yield (the URL to use, description of what it is)."""
    if url:
        yield url, f"configured REDIS_URL {redact_url(url)}"
        return
    os.environ["REDIS_CLUSTER"] = "false"  # ours below: one server, never a cluster
    if redis_server_binary():
        with RedisServer() as server:
            yield (
                server.url,
                (
                    f"embedded redis-server {server.version} on 127.0.0.1:{server.port} "
                    "(no REDIS_URL set; stopped when the demo ends)"
                ),
            )
        return
    try:
        import fakeredis  # noqa: F401
    except ImportError:
        raise SystemExit(
            "demo: no REDIS_URL, no redis-server on PATH and fakeredis is not installed; "
            "set REDIS_URL or install abe-redis[fakeredis]"
        ) from None
    with fake_server() as fake_url:
        yield fake_url, "fakeredis' TCP server in process (no REDIS_URL and no redis-server found)"


def load_through_entry_point() -> tuple[RedisMessageQueueBackend, str]:
    """Load the backend the way hosts do; say which loader did it."""
    try:
        from abe.backends.message_queue.loader import load_backend
    except ImportError:
        from ..plugin import load_backend as ours

        return ours(), (
            "abstract-backend is not installed here (it needs Python 3.12+); "
            "resolved entry point 'redis' in group 'abe.backends.message_queue' directly"
        )
    backend = load_backend()
    if not isinstance(backend, RedisMessageQueueBackend):
        raise SystemExit(f"demo: the loader returned {type(backend).__name__}, not our backend")
    return backend, "abstract-backend load_backend() with QUEUE_BACKEND=redis"


async def run_demo(url: str, events: int, workers: int) -> int:
    os.environ.update(
        QUEUE_BACKEND="redis",
        REDIS_URL=url,
        REDIS_STREAMS=DEMO_STREAM,
        REDIS_STREAM_REGISTRY=DEMO_REGISTRY,
        REDIS_CONSUMER_GROUP=DEMO_GROUP,
    )
    backend, how = load_through_entry_point()
    print(f"  loader:    {how}")
    print(f"  backend:   {backend!r}")
    async with backend:
        await backend.ping()
        start = time.perf_counter()
        for i in range(events):
            await backend.publish(DEMO_STREAM, slack_event(i))
        took = time.perf_counter() - start
        print(
            f"  published: {events} events to {DEMO_STREAM!r} in {took:.3f} s "
            f"({events / took:,.0f}/s, sequential), before any worker existed"
        )

        seen: Counter[str] = Counter()
        per_worker: Counter[int] = Counter()
        done = anyio.Event()

        async def worker(n: int) -> None:
            async with backend.consume() as consumer:
                async for event in consumer:
                    seen[event["event_id"]] += 1
                    per_worker[n] += 1
                    if sum(per_worker.values()) >= events:
                        done.set()
                    if done.is_set():
                        break

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for n in range(1, workers + 1):
                tg.start_soon(worker, n)
            with anyio.move_on_after(60):
                await done.wait()
            tg.cancel_scope.cancel()
        took = time.perf_counter() - start
        split = ", ".join(f"worker {n}: {per_worker[n]}" for n in range(1, workers + 1))
        print(
            f"  consumed:  {sum(per_worker.values())} events with {workers} workers of group "
            f"{DEMO_GROUP!r} in {took:.3f} s ({sum(per_worker.values()) / took:,.0f}/s; {split})"
        )
        missing = events - len(seen)
        duplicates = sum(c - 1 for c in seen.values())
        pending = (await backend.pending(DEMO_STREAM, DEMO_GROUP)).count
        print(f"  checked:   missing {missing}, duplicates {duplicates}, still pending {pending}")
        await backend.delete_stream(DEMO_STREAM)
    return 0 if missing == 0 and pending == 0 else 1


def demo(events: int, workers: int, loop: str) -> int:
    """Run the demo; the process exit code."""
    print(f"abe-redis {__version__} demo on {loop}")
    with demo_target(os.environ.get("REDIS_URL")) as (url, what):
        print(f"  redis:     {what}")
        code: int = anyio.run(run_demo, url, events, workers, backend=loop)
    print("  result:    " + ("ok" if code == 0 else "FAILED"))
    return code
