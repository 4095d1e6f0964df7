"""Reading and settling dead-letter streams (``<stream>:dlq``).

A record holds why the entry died and, for entries we wrote, its ``data``
field unchanged, so replaying it re-publishes the exact payload. Replay
and purge are per record: ``XADD`` to the source stream and ``XDEL`` from
the dead-letter stream in one MULTI, so a record is never in both places
and never lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RemoteProtocolError
from .codec import FIELD, decode_entry
from .commands import Delete, Pipeline, XAdd, XDel, XLen, XRange
from .consumer import dead_letter_stream
from .entries import DeadLetter, Delivery, StreamEntry
from .steps import Flow, once

PAGE = 100


def parse_dead_letter(entry: StreamEntry) -> DeadLetter:
    """Turn a record of a dead-letter stream into a :class:`DeadLetter`."""
    fields = dict(entry.fields or ())

    def get(name: bytes) -> str | None:
        value = fields.get(name)
        return None if value is None else value.decode("utf-8", "replace")

    source_stream, source_id = get(b"source_stream"), get(b"source_id")
    if source_stream is None or source_id is None:
        raise RemoteProtocolError(f"record {entry.id} of {entry.stream} is not a dead letter")
    payload = None
    if FIELD in fields:
        decoded = decode_entry(StreamEntry(source_stream, source_id, ((FIELD, fields[FIELD]),)))
        payload = decoded.payload if isinstance(decoded, Delivery) else None
    return DeadLetter(
        id=entry.id,
        source_stream=source_stream,
        source_id=source_id,
        group=get(b"group") or "",
        reason=get(b"reason") or "",
        deliveries=int(get(b"deliveries") or 0),
        error=get(b"error"),
        payload=payload,
        fields=entry.fields or (),
    )


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did: records re-published, and those left (not ours to replay)."""

    replayed: int
    skipped: int


def list_dead_letters(
    stream: str, count: int = PAGE, after: str = "-"
) -> Flow[tuple[DeadLetter, ...]]:
    """Flow: up to ``count`` dead letters of ``stream``, oldest first."""
    entries = yield from once(XRange(dead_letter_stream(stream), after, "+", count))
    return tuple(parse_dead_letter(e) for e in entries)


def count_dead_letters(stream: str) -> Flow[int]:
    """Flow: how many dead letters ``stream`` has."""
    return (yield from once(XLen(dead_letter_stream(stream))))


def _selected(stream: str, ids: tuple[str, ...] | None) -> Flow[list[DeadLetter]]:
    dlq = dead_letter_stream(stream)
    if ids is not None:
        found: list[DeadLetter] = []
        for entry_id in ids:
            found.extend(
                parse_dead_letter(e) for e in (yield from once(XRange(dlq, entry_id, entry_id, 1)))
            )
        return found
    found = []
    start = "-"
    while True:
        page = yield from once(XRange(dlq, start, "+", PAGE))
        found.extend(parse_dead_letter(e) for e in page)
        if len(page) < PAGE:
            return found
        start = "(" + page[-1].id


def replay_dead_letters(stream: str, ids: tuple[str, ...] | None = None) -> Flow[ReplayResult]:
    """Flow: re-publish dead letters (all, or ``ids``) to their source stream.

    Records without our ``data`` field (foreign entries) are left in place:
    replaying them would only dead-letter them again.
    """
    dlq = dead_letter_stream(stream)
    replayed = skipped = 0
    for dead in (yield from _selected(stream, ids)):
        data = dict(dead.fields).get(FIELD)
        if data is None or dead.payload is None:
            skipped += 1
            continue
        pipe = Pipeline(
            (XAdd(dead.source_stream, ((FIELD, data),)), XDel(dlq, (dead.id,))), transaction=True
        )
        yield from once(pipe)
        replayed += 1
    return ReplayResult(replayed, skipped)


def purge_dead_letters(stream: str, ids: tuple[str, ...] | None = None) -> Flow[int]:
    """Flow: delete dead letters (all, or ``ids``); returns how many went."""
    dlq = dead_letter_stream(stream)
    if ids is not None:
        return (yield from once(XDel(dlq, ids))) if ids else 0
    count = yield from once(XLen(dlq))
    yield from once(Delete(dlq))
    return count
