"""Consumers as hosts drive them: async generators (asend, athrow, aclose), generators
(send, throw, close), and loops that retry after an error."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import redis

from abe_redis import ConnectError, SyncRedisQueue
from abe_redis.embedded import RedisServer, free_port

from ..helpers import admin
from .conftest import BackendFactory, fast

pytestmark = pytest.mark.anyio


async def test_athrow_fails_the_payload_in_hand_and_returns_the_next(
    make_backend: BackendFactory, raw: redis.Redis
) -> None:
    backend = make_backend(max_deliveries=2, retry_base=0.05, retry_cap=0.05)
    for n in (1, 2, 3):
        await backend.publish("jobs", {"n": n})
    async with backend.consume() as consumer:
        with anyio.fail_after(10):
            first = await consumer.__anext__()
            assert first == {"n": 1}
            # The host reports the failure the way it would to an async generator.
            assert await consumer.athrow(ValueError("boom")) == {"n": 2}
            assert await consumer.asend(None) == {"n": 3}
            assert await consumer.asend(None) == {"n": 1}  # back after its backoff
            # Its last allowed delivery fails too: dead-lettered, with the error.
            with anyio.move_on_after(0.5):
                await consumer.athrow(ValueError, ValueError("boom again"))  # nothing next
    assert consumer.stats.retried == 1
    assert consumer.stats.dead_lettered == 1
    (dead,) = await backend.dead_letters("jobs")
    assert dead.payload == {"n": 1}
    assert dead.error == "ValueError: boom again"
    assert (await backend.pending("jobs")).count == 0


async def test_athrow_with_nothing_in_hand_raises_it(make_backend: BackendFactory) -> None:
    backend = make_backend()
    consumer = backend.consume()
    with pytest.raises(KeyError):
        await consumer.athrow(KeyError("not started"))
    await consumer.aclose()
    with pytest.raises(KeyError):
        await consumer.athrow(KeyError("closed"))


async def test_a_host_treating_consume_as_an_async_generator_keeps_going(
    make_backend: BackendFactory,
) -> None:
    # Regression: athrow did not exist, so this host's worker died on the
    # first failed handler (2,984 of 3,000 events never processed).
    backend = make_backend(retry_base=0.01, retry_cap=0.01)
    for n in range(30):
        await backend.publish("events", {"n": n})
    handled: list[int] = []
    failed_once: set[int] = set()
    async with backend.consume() as consumer:
        with anyio.fail_after(20):
            event: dict[str, Any] = await consumer.__anext__()
            while True:
                n = event["n"]
                if n % 7 == 3 and n not in failed_once:  # the handler fails once
                    failed_once.add(n)
                    event = await consumer.athrow(RuntimeError(f"handler failed on {n}"))
                    continue
                handled.append(n)
                if len(handled) == 30:
                    break
                event = await consumer.__anext__()
    assert sorted(handled) == list(range(30))
    assert failed_once == {3, 10, 17, 24}


async def test_aclose_with_an_exception_not_an_error_releases_and_reraises(
    make_backend: BackendFactory,
) -> None:
    backend = make_backend()
    await backend.publish("jobs", {"n": 1})
    consumer = backend.consume()
    assert await consumer.__anext__() == {"n": 1}
    with pytest.raises(GeneratorExit):
        await consumer.athrow(GeneratorExit())
    assert consumer.closed
    assert consumer.stats.acked == 0  # released, not acknowledged
    assert consumer.stats.released == 1


async def test_a_failed_start_can_be_retried_and_never_leaks_internal_errors() -> None:
    # Regression: after one ConnectError at start-up every later call raised
    # the core's internal Interrupted, while `closed` stayed False.
    port = free_port()
    from abe_redis import RedisMessageQueueBackend, Settings

    settings = Settings(url=f"redis://127.0.0.1:{port}/0", block_ms=50, registry_key="r")
    async with RedisMessageQueueBackend(settings) as backend:
        consumer = backend.consume()
        for _ in range(3):
            with pytest.raises(ConnectError):
                await consumer.__anext__()
            assert not consumer.closed
        with RedisServer(port=port) as server:
            with admin(server.url) as client:
                client.xadd("s", {"data": b'{"n":1}'})
                client.sadd("r", "s")
            with anyio.fail_after(10):
                assert await consumer.__anext__() == {"n": 1}
            await consumer.aclose()


def test_sync_consumer_throw_and_send(server_url: str) -> None:
    settings = fast(server_url, max_deliveries=2, retry_base=0.05, retry_cap=0.05)
    with SyncRedisQueue(settings) as queue:
        for n in (1, 2, 3):
            queue.publish("jobs", {"n": n})
        with queue.consume() as consumer:
            assert next(consumer) == {"n": 1}
            assert consumer.throw(ValueError("boom")) == {"n": 2}
            assert consumer.send(None) == {"n": 3}
            assert consumer.send(None) == {"n": 1}  # back after its backoff
            queue.publish("jobs", {"n": 4})
            assert consumer.throw(ZeroDivisionError, None) == {"n": 4}  # n=1 dead now
            consumer.close(processed=True)
            with pytest.raises(KeyError):
                consumer.throw(KeyError("closed"))
        (dead,) = queue.dead_letters("jobs")
        assert dead.error == "ZeroDivisionError"
        assert queue.pending("jobs").count == 0


async def test_settling_a_delivery_is_a_checkpoint(make_backend: BackendFactory) -> None:
    # trio's rule: an async method checkpoints, so cancellation lands there
    # (and a cancelled ack has not happened).
    backend = make_backend()
    await backend.publish("jobs", {"n": 1})
    async with backend.deliveries() as deliveries:
        delivery = await deliveries.__anext__()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await delivery.ack()
        assert scope.cancelled_caught
        assert deliveries.unsettled == 1
        await delivery.ack()
        assert deliveries.unsettled == 0
