"""Typed values the core hands out: stream entries, deliveries, pages, summaries."""

from __future__ import annotations

from dataclasses import dataclass
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

    @property
    def key(self) -> tuple[str, str]:
        """(stream, id): unique among the entries one consumer holds."""
        return (self.stream, self.id)


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
    """One row of XINFO CONSUMERS."""

    name: str
    pending: int
    idle_ms: int


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
