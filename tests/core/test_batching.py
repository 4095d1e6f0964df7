from __future__ import annotations

from collections import deque

import pytest

from abe_redis._core.batching import Request, fail, merged, settle, shareable, take_batch
from abe_redis._core.commands import SAdd, XAdd, XLen, XReadGroup
from abe_redis._core.steps import Batch, Race
from abe_redis.errors import ConnectError, TransportError

ADD = XAdd("s", ((b"data", b"{}"),))


def test_batches_respect_the_width_limit_counting_pipeline_members() -> None:
    queue = deque([Request(ADD), Request(Batch((SAdd("r", "s"), ADD))), Request(ADD), Request(ADD)])
    first = take_batch(queue, max_batch=3)
    assert [r.step for r in first] == [ADD, Batch((SAdd("r", "s"), ADD))]
    assert len(queue) == 2
    # One oversized request still goes, alone.
    big = deque([Request(Batch((ADD,) * 5))])
    assert len(take_batch(big, max_batch=3)) == 1


def test_each_caller_gets_its_own_slice_of_the_merged_reply() -> None:
    batch = [Request(ADD), Request(Batch((SAdd("r", "s"), ADD))), Request(XLen("s"))]
    assert merged(batch) == Batch((ADD, SAdd("r", "s"), ADD, XLen("s")))
    settle(batch, [b"1-0", 1, b"2-0", 2])
    assert [r.outcome() for r in batch] == [b"1-0", [1, b"2-0"], 2]
    lone = [Request(ADD)]
    assert merged(lone) == ADD
    settle(lone, b"3-0")
    assert lone[0].outcome() == b"3-0"


def test_an_error_reaches_every_caller_typed() -> None:
    batch = [Request(ADD), Request(ADD)]
    fail(batch, OSError("reset"))
    for request in batch:
        assert request.done
        with pytest.raises(TransportError, match="round trip cut short: OSError: reset"):
            request.outcome()
    ours = [Request(ADD)]
    fail(ours, ConnectError("down"))
    with pytest.raises(ConnectError, match="down"):
        ours[0].outcome()


def test_multi_pipelines_are_never_shared() -> None:
    assert shareable(ADD)
    assert shareable(Batch((ADD, ADD)))
    assert not shareable(Batch((ADD, ADD), transaction=True))
    assert not shareable(Race((XReadGroup("g", "c", "s", ">", 1, 100),)))


def test_taken_requests_leave_the_queue_marked() -> None:
    queue = deque([Request(ADD), Request(ADD)])
    (first,) = take_batch(queue, max_batch=1)
    assert not first.queued
    assert queue[0].queued
    assert take_batch(deque(), max_batch=10) == []
