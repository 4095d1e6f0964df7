"""The async and sync faces offer the same operations with the same parameters.

Names differ only where Python's conventions demand (``aclose``/``close``,
``__anext__``/``__next__``, ``athrow``/``throw``, ...). The few operations only
one face has are listed here with the reason, so the faces cannot drift
apart unnoticed.
"""

from __future__ import annotations

import inspect

import pytest

from abe_redis import (
    AsyncConsumer,
    AsyncDeliveries,
    AsyncDelivery,
    RedisMessageQueueBackend,
    SyncConsumer,
    SyncDeliveries,
    SyncDelivery,
    SyncRedisQueue,
)

ASYNC_TO_SYNC = {
    "aclose": "close",
    "asend": "send",
    "athrow": "throw",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
}
# Only on the sync face: blocking code has no cancellation to end a loop,
# so it gets a signal-aware run() and a thread-safe stop().
SYNC_ONLY = {"run", "stop"}
PAIRS = [
    (RedisMessageQueueBackend, SyncRedisQueue),
    (AsyncConsumer, SyncConsumer),
    (AsyncDeliveries, SyncDeliveries),
    (AsyncDelivery, SyncDelivery),
]


def public(cls: type) -> dict[str, object]:
    names = {n for n in dir(cls) if not n.startswith("_") or n in ASYNC_TO_SYNC.values()}
    names |= {n for n in ASYNC_TO_SYNC if hasattr(cls, n)}
    names -= {"__init__", "__repr__"}
    return {n: inspect.getattr_static(cls, n) for n in names}


def parameters(member: object) -> list[tuple[str, object, object]]:
    func = member.__func__ if isinstance(member, classmethod | staticmethod) else member
    if isinstance(func, property) or not callable(func):
        return []
    return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=lambda c: c.__name__)
def test_both_faces_offer_the_same_operations(async_cls: type, sync_cls: type) -> None:
    mine = {ASYNC_TO_SYNC.get(n, n): m for n, m in public(async_cls).items()}
    theirs = {n: m for n, m in public(sync_cls).items() if n not in SYNC_ONLY}
    assert sorted(mine) == sorted(theirs)
    for name, member in mine.items():
        assert parameters(member) == parameters(theirs[name]), name
        assert isinstance(member, property) == isinstance(theirs[name], property), name


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=lambda c: c.__name__)
def test_async_operations_are_coroutines_and_sync_ones_are_not(
    async_cls: type, sync_cls: type
) -> None:
    for name, member in public(async_cls).items():
        if (name.startswith("a") and name[1:] in ("close", "send", "throw")) or name in (
            "__aenter__",
            "__aexit__",
            "__anext__",
        ):
            assert inspect.iscoroutinefunction(member), name
    for name, member in public(sync_cls).items():
        assert not inspect.iscoroutinefunction(member), name
