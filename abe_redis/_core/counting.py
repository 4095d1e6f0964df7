"""Delivery counting: what an entry fetched from Redis becomes.

Counts come from Redis. An entry read with ``>`` is on its first delivery;
for entries re-read, reclaimed or retried, XPENDING says how often Redis
delivered them (:func:`count_queries`). Then :func:`admit` decides: an
entry deleted while pending is only acknowledged; one delivered more than
``max_deliveries`` times, or that cannot be decoded, is dead-lettered; any
other becomes a :class:`Delivery`.
"""

from __future__ import annotations

from collections.abc import Iterable

from .codec import MAX_PAYLOAD_BYTES, Loads, Undecodable, decode_entry
from .commands import XPendingRange
from .deadletters import DeadEntry
from .entries import Delivery, PendingEntry, StreamEntry
from .ids import id_order
from .settling import Key
from .steps import Batch


def count_queries(entries: Iterable[StreamEntry], group: str, consumer: str, held: int) -> Batch:
    """XPENDING range queries covering ``entries``, one per stream.

    The range also covers entries we hold already, hence the ``held``
    margin in the count.
    """
    by_stream: dict[str, list[str]] = {}
    for entry in entries:
        by_stream.setdefault(entry.stream, []).append(entry.id)
    return Batch(
        tuple(
            XPendingRange(
                stream,
                group,
                min(ids, key=id_order),
                max(ids, key=id_order),
                held + len(ids) + 16,
                consumer,
            )
            for stream, ids in by_stream.items()
        )
    )


def counts(batch: Batch, pages: tuple[tuple[PendingEntry, ...], ...]) -> dict[Key, int]:
    """Delivery count by entry, from the answers to :func:`count_queries`."""
    return {
        (query.stream, row.id): row.deliveries
        for query, page in zip(batch.commands, pages, strict=True)
        if isinstance(query, XPendingRange)
        for row in page
    }


def admit(
    entry: StreamEntry,
    deliveries: int,
    limit: int,
    loads: Loads,
    error: str | None = None,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Delivery | DeadEntry | None:
    """What ``entry`` becomes: a delivery, a dead letter, or None (deleted: only ack it).

    ``error`` is what the last handler said, kept with a dead letter.
    """
    fields = entry.fields
    if fields is None:
        return None
    if deliveries > limit:
        reason = f"delivered {deliveries} times, more than max_deliveries={limit}"
        return DeadEntry(entry.stream, entry.id, fields, reason, deliveries, error)
    decoded = decode_entry(entry, deliveries, loads, max_bytes)
    if isinstance(decoded, Undecodable):
        return DeadEntry(entry.stream, entry.id, fields, decoded.reason, deliveries)
    return decoded
