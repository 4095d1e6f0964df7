"""SyncRedisQueue: blocking calls from plain threads, no loop in the caller."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis

from abe_redis import BackendClosed, PayloadError, Settings, StreamKeyError, SyncRedisQueue


def test_publish_then_consume_in_a_with_block(sync_queue: SyncRedisQueue) -> None:
    ids = [sync_queue.publish_entry("jobs", {"i": i}) for i in range(5)]
    assert len(set(ids)) == 5
    with sync_queue.consume() as consumer:
        got = [next(consumer) for _ in range(5)]
    assert got == [{"i": i} for i in range(5)]
    assert sync_queue.pending("jobs").count == 0


def test_the_caller_thread_runs_no_event_loop(sync_queue: SyncRedisQueue) -> None:
    sync_queue.publish("jobs", {"i": 1})
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_iterating_and_breaking_acks_what_was_processed(sync_queue: SyncRedisQueue) -> None:
    for i in range(3):
        sync_queue.publish("jobs", {"i": i})
    seen = []
    with sync_queue.consume() as consumer:
        for payload in consumer:
            seen.append(payload["i"])
            if len(seen) == 3:
                break
    assert seen == [0, 1, 2]
    assert sync_queue.pending("jobs").count == 0


def test_an_exception_in_the_loop_leaves_the_payload_pending(sync_queue: SyncRedisQueue) -> None:
    sync_queue.publish("jobs", {"i": 0})
    with pytest.raises(ValueError, match="boom"), sync_queue.consume() as consumer:  # noqa: PT012
        next(consumer)
        raise ValueError("boom")
    assert sync_queue.pending("jobs").count == 1


def test_many_threads_share_one_queue(sync_queue: SyncRedisQueue, raw: redis.Redis) -> None:
    def publish(n: int) -> None:
        for i in range(50):
            sync_queue.publish("jobs", {"thread": n, "i": i})

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert raw.xlen("jobs") == 400
    with sync_queue.consume() as consumer:
        got = {(p["thread"], p["i"]) for p in (next(consumer) for _ in range(400))}
    assert len(got) == 400


def test_bad_input_is_refused_before_writing(sync_queue: SyncRedisQueue, raw: redis.Redis) -> None:
    with pytest.raises(StreamKeyError):
        sync_queue.publish("", {"a": 1})
    with pytest.raises(PayloadError):
        sync_queue.publish("jobs", {"a": object()})
    assert raw.keys("*") == []


def test_closed_queue_refuses_calls(server_url: str) -> None:
    queue = SyncRedisQueue(Settings(url=server_url))
    assert queue.ping() is True
    queue.close()
    queue.close()  # idempotent
    with pytest.raises(BackendClosed):
        queue.publish("jobs", {"a": 1})


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@cache:6379/0")
    with SyncRedisQueue.from_env() as queue:
        assert "hunter2" not in repr(queue)
        assert queue.settings.password is None


def test_run_acks_successes_and_nacks_failures(sync_queue: SyncRedisQueue) -> None:
    for i in range(4):
        sync_queue.publish("jobs", {"i": i})
    seen: list[int] = []
    consumer_of_run: list[object] = []

    def handler(payload: dict[str, object]) -> None:
        seen.append(int(str(payload["i"])))
        if payload["i"] == 2 and seen.count(2) == 1:
            raise ValueError("first try fails")
        if len(seen) == 5:
            consumer_of_run.append(True)
            import os
            import signal

            os.kill(os.getpid(), signal.SIGTERM)

    handled = sync_queue.run(handler)
    assert handled == 5
    assert sorted(seen) == [0, 1, 2, 2, 3]
    assert sync_queue.pending("jobs").count == 0


def test_sync_deliveries_settle_explicitly(sync_queue: SyncRedisQueue) -> None:
    sync_queue.publish("jobs", {"i": 1})
    with sync_queue.deliveries() as deliveries:
        delivery = next(deliveries)
        assert delivery.deliveries == 1
        assert delivery.nack(delay=0.05) == 0.05
        again = next(deliveries)
        assert again.deliveries == 2
        again.ack()
    assert sync_queue.pending("jobs").count == 0


def test_stop_ends_iteration_from_another_thread(sync_queue: SyncRedisQueue) -> None:
    consumer = sync_queue.consume()
    threading.Timer(0.2, consumer.stop).start()
    with consumer:
        assert list(consumer) == []
