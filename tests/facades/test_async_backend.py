"""The async facade on asyncio and trio, on its own connections to a private redis-server."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest
import redis

from abe_redis import (
    BackendClosed,
    PayloadError,
    RedisMessageQueueBackend,
    StreamKeyError,
)

from ..helpers import only_pool, take
from .conftest import BackendFactory, fast

pytestmark = pytest.mark.anyio


async def test_payload_comes_back_exactly_as_published(make_backend: BackendFactory) -> None:
    backend = make_backend()
    payload = {"type": "message", "text": "héllo", "n": 1, "x": 1.5, "nested": {"l": [1, None]}}
    await backend.publish("slack_events", payload)
    async with backend.consume() as consumer:
        assert await take(consumer, 1) == [payload]


async def test_events_published_before_any_consumer_are_delivered(
    make_backend: BackendFactory,
) -> None:
    backend = make_backend()
    for i in range(20):
        await backend.publish("slack_events", {"i": i})
    async with backend.consume() as consumer:
        got = await take(consumer, 20)
    assert [e["i"] for e in got] == list(range(20))


async def test_each_group_gets_every_event(make_backend: BackendFactory) -> None:
    backend = make_backend()
    for i in range(5):
        await backend.publish("slack_events", {"i": i})
    async with backend.consume(group="a") as a, backend.consume(group="b") as b:
        assert await take(a, 5) == await take(b, 5)


async def test_consumers_of_one_group_share_the_events(make_backend: BackendFactory) -> None:
    backend = make_backend(prefetch=2)
    for i in range(10):
        await backend.publish("slack_events", {"i": i})
    first, second = backend.consume(), backend.consume()
    assert first.name != second.name
    got = await take(first, 2) + await take(second, 8)
    assert sorted(e["i"] for e in got) == list(range(10))
    await first.aclose()
    await second.aclose()


async def test_a_configured_consumer_name_stays_unique_in_the_process(
    make_backend: BackendFactory,
) -> None:
    backend = make_backend(consumer_name="pod-7")
    first, second = backend.consume(), backend.consume()
    assert first.name.startswith("pod-7")
    assert second.name.startswith("pod-7-")
    assert first.name != second.name
    await first.aclose()
    await second.aclose()


async def test_bad_input_raises_typed_errors_and_writes_nothing(
    make_backend: BackendFactory, raw: redis.Redis
) -> None:
    backend = make_backend()
    bad: list[tuple[Any, Any, type[Exception]]] = [
        ("", {"a": 1}, StreamKeyError),
        (None, {"a": 1}, StreamKeyError),
        ("test:streams", {"a": 1}, StreamKeyError),
        ("s", {"a": {1, 2}}, PayloadError),
        ("s", {"a": b"bytes"}, PayloadError),
        ("s", {"a": math.nan}, PayloadError),
        ("s", ["not", "a", "dict"], PayloadError),
    ]
    for key, payload, error in bad:
        with pytest.raises(error):
            await backend.publish(key, payload)
    assert raw.keys("*") == []


async def test_probe_streams_are_capped_and_not_consumed(
    make_backend: BackendFactory, raw: redis.Redis
) -> None:
    backend = make_backend()
    for i in range(150):
        await backend.publish("_health_check", {"i": i})
    await backend.publish("slack_events", {"real": True})
    assert raw.xlen("_health_check") == 100
    assert raw.smembers("test:streams") == {b"slack_events"}
    async with backend.consume() as consumer:
        assert await take(consumer, 1) == [{"real": True}]
        with anyio.move_on_after(0.3) as scope:
            await consumer.__anext__()
        assert scope.cancelled_caught


async def test_listed_streams_only_and_probes_when_listed(make_backend: BackendFactory) -> None:
    backend = make_backend(streams=("_probe",))
    await backend.publish("slack_events", {"skip": True})
    await backend.publish("_probe", {"probe": True})
    async with backend.consume() as consumer:
        assert await take(consumer, 1) == [{"probe": True}]


async def test_streams_created_later_are_found(make_backend: BackendFactory) -> None:
    backend = make_backend()
    await backend.publish("first", {"n": 1})
    async with backend.consume() as consumer:
        assert await take(consumer, 1) == [{"n": 1}]
        await backend.publish("second", {"n": 2})
        assert await take(consumer, 1) == [{"n": 2}]


async def test_entry_is_acked_only_after_the_host_asks_for_the_next(
    make_backend: BackendFactory,
) -> None:
    backend = make_backend(prefetch=1)
    for i in range(3):
        await backend.publish("s", {"i": i})
    consumer = backend.consume()
    await take(consumer, 1)
    assert (await backend.pending("s")).count == 1
    await take(consumer, 1)  # the first is now processed; its ack rides with the next read
    await take(consumer, 1)
    assert (await backend.pending("s")).count == 1  # only the one in hand
    await consumer.aclose()  # a clean close acks the one in hand
    assert (await backend.pending("s")).count == 0


async def test_leaving_with_an_error_does_not_ack_the_payload_in_hand(
    make_backend: BackendFactory,
) -> None:
    backend = make_backend()
    await backend.publish("s", {"i": 0})
    with pytest.raises(RuntimeError):  # noqa: PT012 - the raise must happen inside the block
        async with backend.consume() as consumer:
            await take(consumer, 1)
            raise RuntimeError("handler crashed")
    assert (await backend.pending("s")).count == 1


async def test_a_timed_out_wait_loses_nothing(make_backend: BackendFactory) -> None:
    backend = make_backend()
    async with backend.consume() as consumer:
        with anyio.move_on_after(0.2):
            await consumer.__anext__()
        await backend.publish("s", {"after": "timeout"})
        assert await take(consumer, 1) == [{"after": "timeout"}]


async def test_foreign_entries_are_dead_lettered_and_consumption_goes_on(
    make_backend: BackendFactory, raw: redis.Redis
) -> None:
    backend = make_backend()
    await backend.publish("s", {"n": 1})
    raw.xadd("s", {"payload": "not ours"})
    raw.xadd("s", {"data": b"\xff\xfe"})
    await backend.publish("s", {"n": 2})
    async with backend.consume() as consumer:
        assert await take(consumer, 2) == [{"n": 1}, {"n": 2}]
    dead: list[Any] = raw.xrange("abe_redis:dlq:{s}:s")  # type: ignore[assignment]
    assert len(dead) == 2
    assert dead[0][1][b"field:payload"] == b"not ours"
    assert (await backend.pending("s")).count == 0


async def test_closed_backend_refuses_calls(make_backend: BackendFactory) -> None:
    backend = make_backend()
    await backend.aclose()
    with pytest.raises(BackendClosed):
        await backend.publish("s", {"a": 1})
    with pytest.raises(BackendClosed):
        backend.consume()


async def test_publish_entry_returns_the_id(make_backend: BackendFactory) -> None:
    backend = make_backend()
    entry_id = await backend.publish_entry("s", {"a": 1})
    first, _, second = entry_id.partition("-")
    assert first.isdigit()
    assert second.isdigit()
    assert await backend.stream_length("s") == 1
    assert [g.name for g in await backend.groups("s")] == []
    assert await backend.delete_stream("s") is True
    assert await backend.stream_length("s") == 0


def test_from_env_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://user:pw@cache:6380/1")
    monkeypatch.setenv("REDIS_CONSUMER_GROUP", "workers")
    backend = RedisMessageQueueBackend.from_env()
    assert backend.settings.consumer_group == "workers"
    assert "pw" not in repr(backend)


def test_consumer_names_stay_unique_across_threads() -> None:
    # Regression: the process-wide counters were read and written without a lock.
    import sys
    import threading

    from abe_redis._async.backend import configured_consumer_name, default_consumer_name

    names: list[str] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:

        def make() -> None:
            for _ in range(500):
                names.append(configured_consumer_name("pod-threads"))
                names.append(default_consumer_name())

        threads = [threading.Thread(target=make) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(set(names)) == len(names) == 8000


async def test_a_backend_closed_by_a_cancelled_task_closes_every_connection(
    server_url: str,
) -> None:
    # Regression: a host's task group cancelled the worker while it consumed.
    # Closing under that cancellation stopped at the lease thread, and the
    # connections were never closed (unclosed-socket warnings, fds leaked).
    backend = RedisMessageQueueBackend(fast(server_url))
    with anyio.move_on_after(0.5):
        async with backend, backend.consume() as events:
            await backend.publish("s", {"n": 1})
            async for _ in events:
                pass
    assert backend._closed
    wire = backend._wire
    assert wire is not None
    pool = only_pool(wire.topology)
    assert pool.size > 0
    assert all(conn._stream is None for conn in pool._all)
