"""Settlement, dead letters, idempotency and trimming through the async facade."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import redis

from abe_redis import AsyncDeliveries, AsyncDelivery, LocalProtocolError, ValidationError

from ..helpers import take
from .conftest import BackendFactory

pytestmark = pytest.mark.anyio


async def next_delivery(deliveries: AsyncDeliveries, timeout: float = 5.0) -> AsyncDelivery:
    with anyio.fail_after(timeout):
        return await deliveries.__anext__()


async def test_ack_settles_and_settling_twice_is_an_error(make_backend: BackendFactory) -> None:
    backend = make_backend()
    await backend.publish("s", {"n": 1})
    async with backend.deliveries() as deliveries:
        delivery = await next_delivery(deliveries)
        assert (delivery.payload, delivery.stream, delivery.deliveries) == ({"n": 1}, "s", 1)
        await delivery.ack()
        with pytest.raises(LocalProtocolError, match="settled already"):
            await delivery.ack()
        with pytest.raises(LocalProtocolError):
            await delivery.nack()
    assert (await backend.pending("s")).count == 0


async def test_nack_redelivers_after_the_delay_with_a_higher_count(
    make_backend: BackendFactory,
) -> None:
    backend = make_backend()
    await backend.publish("s", {"n": 1})
    async with backend.deliveries() as deliveries:
        first = await next_delivery(deliveries)
        assert await first.nack(delay=0.1, error="try again") == 0.1
        again = await next_delivery(deliveries)
        assert again.id == first.id
        assert again.deliveries == 2
        await again.ack()
        assert deliveries.stats.retried == 1


async def test_failing_every_time_ends_in_the_dead_letter_stream(
    make_backend: BackendFactory,
) -> None:
    backend = make_backend(max_deliveries=3)
    await backend.publish("s", {"poison": True})
    await backend.publish("s", {"fine": True})
    async with backend.deliveries() as deliveries:
        seen: list[int] = []
        while len(seen) < 4:
            delivery = await next_delivery(deliveries)
            seen.append(delivery.deliveries)
            if delivery.payload.get("poison"):
                await delivery.nack(delay=0.01, error=ValueError("bad input"))
            else:
                await delivery.ack()
        with anyio.move_on_after(0.3):
            await deliveries.__anext__()  # lets the dead letter be moved
    assert seen.count(1) == 2
    assert 3 in seen
    (dead,) = await backend.dead_letters("s")
    assert dead.payload == {"poison": True}
    assert dead.deliveries == 3
    assert dead.error == "ValueError: bad input"
    assert dead.reason == "failed on delivery 3 of 3"
    assert (await backend.pending("s")).count == 0
    assert await backend.dead_letter_count("s") == 1


async def test_dead_letters_can_be_replayed_and_purged(
    make_backend: BackendFactory, raw: redis.Redis
) -> None:
    backend = make_backend(max_deliveries=1)
    await backend.publish("s", {"n": 1})
    raw.xadd("s", {"foreign": "x"})
    async with backend.deliveries() as deliveries:
        delivery = await next_delivery(deliveries)
        await delivery.nack(error="boom")
        with anyio.move_on_after(0.3):
            await deliveries.__anext__()
    assert await backend.dead_letter_count("s") == 2
    result = await backend.replay_dead_letters("s")
    assert (result.replayed, result.skipped) == (1, 1)
    assert await backend.dead_letter_count("s") == 1
    async with backend.consume(group="fresh-eyes") as consumer:
        got = await take(consumer, 2)
    assert got.count({"n": 1}) == 2  # the original and the replayed copy
    # The new group met the foreign entry too: one record per group.
    assert await backend.dead_letter_count("s") == 2
    assert await backend.purge_dead_letters("s") == 2
    assert await backend.dead_letter_count("s") == 0


async def test_dead_letters_under_the_legacy_name_are_adopted(
    make_backend: BackendFactory, raw: redis.Redis
) -> None:
    # What 0.2 left behind: records in `<stream>:dlq`. The tools move them
    # to the current name (the stream's slot) and work on them there.
    record: dict[Any, Any] = {
        "reason": "old",
        "source_stream": "s",
        "source_id": "1-0",
        "data": '{"n": 7}',
    }
    raw.xadd("s:dlq", record)
    raw.xadd("s:dlq", {**record, "source_id": "2-0"})
    backend = make_backend()
    assert await backend.dead_letter_count("s") == 2
    assert raw.xlen("s:dlq") == 0
    dead = await backend.dead_letters("s")
    assert [(d.source_id, d.reason, d.payload) for d in dead] == [
        ("1-0", "old", {"n": 7}),
        ("2-0", "old", {"n": 7}),
    ]
    assert (await backend.replay_dead_letters("s")).replayed == 2
    assert raw.xlen("s") == 2
    assert await backend.dead_letter_count("s") == 0


async def test_a_duplicate_idempotency_key_writes_nothing(
    make_backend: BackendFactory, raw: redis.Redis
) -> None:
    backend = make_backend()
    first = await backend.publish_entry("s", {"n": 1}, idempotency_key="Ev1")
    again = await backend.publish_entry("s", {"n": 1}, idempotency_key="Ev1")
    other = await backend.publish_entry("s", {"n": 2}, idempotency_key="Ev2")
    assert first == again != other
    assert raw.xlen("s") == 2


async def test_hosts_get_idempotency_from_a_payload_field(
    make_backend: BackendFactory, raw: redis.Redis
) -> None:
    backend = make_backend(idempotency_field="event_id")
    for _ in range(3):  # Slack retries the same event
        await backend.publish("slack_events", {"event_id": "Ev42", "type": "message"})
    await backend.publish("slack_events", {"type": "no id, so no dedup"})
    assert raw.xlen("slack_events") == 2
    with pytest.raises(ValidationError, match="event_id"):
        await backend.publish("slack_events", {"event_id": ["not", "a", "key"]})


async def test_trimming_keeps_what_a_group_has_not_finished(
    make_backend: BackendFactory, raw: redis.Redis
) -> None:
    backend = make_backend(prefetch=5)
    ids = [await backend.publish_entry("s", {"i": i}) for i in range(20)]
    async with backend.consume(group="fast") as fast:
        await take(fast, 20)
    slow = backend.consume(group="slow")
    await take(slow, 3)  # fetched 5; three handled, two released on close
    await slow.aclose()
    removed = await backend.trim("s")
    assert removed <= 3
    entries: list[Any] = raw.xrange("s")  # type: ignore[assignment]
    left = {entry_id.decode() for entry_id, _ in entries}
    # Everything the slow group has not acknowledged is still there.
    assert set(ids[3:]) <= left


async def test_consumer_stats_count_what_happened(make_backend: BackendFactory) -> None:
    backend = make_backend()
    for i in range(3):
        await backend.publish("s", {"i": i})
    async with backend.consume() as consumer:
        await take(consumer, 3)
    assert consumer.stats.delivered == 3
    assert consumer.stats.acked == 3
