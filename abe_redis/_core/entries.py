"""Typed values the core hands out: stream entries, deliveries, pages, summaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class StreamEntry:
    """One entry of a stream as Redis returned it; ``fields`` is None when deleted."""

    stream: str
    id: str
    fields: tuple[tuple[bytes, bytes], ...] | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A decoded entry handed to the application; ``deliveries`` is Redis's count."""

    stream: str
    id: str
    payload: dict[str, Any]
    deliveries: int = 1
    traceparent: str | None = field(default=None, compare=False, repr=False)
    """The publisher's trace context (W3C), when it published with tracing on."""

    @property
    def key(self) -> tuple[str, str]:
        """(stream, id): unique among the entries one consumer holds."""
        return (self.stream, self.id)


_new = object.__new__
_SETTERS: tuple[Any, ...] = tuple(
    Delivery.__dict__[name].__set__
    for name in ("stream", "id", "payload", "deliveries", "traceparent")
)


def new_delivery(
    stream: str,
    entry_id: str,
    payload: dict[str, Any],
    deliveries: int,
    traceparent: str | None = None,
) -> Delivery:
    """``Delivery(stream, entry_id, payload, deliveries, traceparent)`` at half the cost.

    One is made per consumed entry. A frozen dataclass's ``__init__`` sets
    each field through ``object.__setattr__``; this sets the slots directly
    (0.45 against 1.03 µs measured on the development VM). Same object.
    """
    delivery = _new(Delivery)
    set_stream, set_id, set_payload, set_deliveries, set_traceparent = _SETTERS
    set_stream(delivery, stream)
    set_id(delivery, entry_id)
    set_payload(delivery, payload)
    set_deliveries(delivery, deliveries)
    set_traceparent(delivery, traceparent)
    return delivery


@dataclass(frozen=True, slots=True)
class ClaimPage:
    """One XAUTOCLAIM answer: entries now owned by us, ids Redis dropped, next cursor."""

    next_start: str
    entries: tuple[StreamEntry, ...]
    deleted: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConsumerPending:
    """How many entries one consumer of a group holds unacknowledged."""

    name: str
    pending: int


@dataclass(frozen=True, slots=True)
class PendingSummary:
    """The summary form of XPENDING for a group."""

    count: int
    min_id: str | None
    max_id: str | None
    consumers: tuple[ConsumerPending, ...]


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """One row of the extended form of XPENDING."""

    id: str
    consumer: str
    idle_ms: int
    deliveries: int


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """One row of XINFO GROUPS."""

    name: str
    consumers: int
    pending: int
    last_delivered_id: str
    entries_read: int | None
    lag: int | None


@dataclass(frozen=True, slots=True)
class ConsumerInfo:
    """One row of XINFO CONSUMERS.

    ``idle_ms``: since the consumer last asked for entries (a read that found
    none counts). ``inactive_ms``: since it last received or claimed one;
    None where the server does not say (before Redis 7.2) or it never has.
    A worker that reads on and on but gets nothing has a small ``idle_ms``
    and a growing ``inactive_ms``.
    """

    name: str
    pending: int
    idle_ms: int
    inactive_ms: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of a dead-letter stream.

    ``id`` is the record's own id (its time is when it was dead-lettered);
    ``source_id``'s time is when the entry was first published.
    """

    id: str
    source_stream: str
    source_id: str
    group: str
    reason: str
    deliveries: int
    error: str | None
    payload: dict[str, Any] | None
    fields: tuple[tuple[bytes, bytes], ...]
