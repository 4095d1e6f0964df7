"""Dead letters: entries that cannot be processed, kept in ``<stream>:dlq``.

This module owns the dead-letter naming and records. An entry is moved with
``XADD <stream>:dlq`` and ``XACK`` in one MULTI, so it is never both pending
and dead-lettered, and never neither. A record holds why the entry died
and, for entries we wrote, its ``data`` field unchanged, so replaying it
re-publishes the exact payload. Replay and purge are atomic per record
(replay: ``XADD`` to the source and ``XDEL`` from the dead-letter stream in
one MULTI; purge of everything: count and delete in one MULTI).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import RemoteProtocolError
from .codec import FIELD, decode_entry
from .commands import Command, Delete, XAck, XAdd, XDel, XLen, XRange
from .entries import DeadLetter, Delivery, StreamEntry
from .steps import Batch, Flow, once, run_batch

DLQ_SUFFIX = ":dlq"
MAX_ERROR_CHARS = 1000
PAGE = 100


def dead_letter_stream(stream: str) -> str:
    """Where entries of ``stream`` go when they cannot be processed."""
    return stream + DLQ_SUFFIX


@dataclass(frozen=True, slots=True)
class DeadEntry:
    """An entry to move to its dead-letter stream, and why."""

    stream: str
    id: str
    fields: tuple[tuple[bytes, bytes], ...]
    reason: str
    deliveries: int
    error: str | None = None


def record(dead: DeadEntry, group: str, consumer: str) -> tuple[tuple[bytes, bytes], ...]:
    """The fields of the dead-letter record of ``dead``."""
    fields = [
        (b"reason", dead.reason.encode()),
        (b"source_stream", dead.stream.encode()),
        (b"source_id", dead.id.encode()),
        (b"group", group.encode()),
        (b"consumer", consumer.encode()),
        (b"deliveries", str(dead.deliveries).encode()),
    ]
    if dead.error is not None:
        fields.append((b"error", dead.error[:MAX_ERROR_CHARS].encode("utf-8", "replace")))
    for name, value in dead.fields:
        # Our own payload stays under `data` so it can be replayed as is.
        fields.append((name if name == FIELD else b"field:" + name, value))
    return tuple(fields)


def burials(
    dead: Iterable[DeadEntry], group: str, consumer: str
) -> list[tuple[Batch, tuple[DeadEntry, ...]]]:
    """One MULTI per stream: the records, then the XACK of their entries."""
    by_stream: dict[str, list[DeadEntry]] = {}
    for entry in dead:
        by_stream.setdefault(entry.stream, []).append(entry)
    out = []
    for stream, entries in by_stream.items():
        commands: list[Command[Any]] = [
            XAdd(dead_letter_stream(stream), record(d, group, consumer)) for d in entries
        ]
        commands.append(XAck(stream, group, tuple(d.id for d in entries)))
        out.append((Batch(tuple(commands), transaction=True), tuple(entries)))
    return out


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
        yield from run_batch(
            Batch(
                (XAdd(dead.source_stream, ((FIELD, data),)), XDel(dlq, (dead.id,))),
                transaction=True,
            )
        )
        replayed += 1
    return ReplayResult(replayed, skipped)


def purge_dead_letters(stream: str, ids: tuple[str, ...] | None = None) -> Flow[int]:
    """Flow: delete dead letters (all, or ``ids``); returns how many went.

    Everything goes in one MULTI (count, then delete), so the count is what
    was deleted even while consumers add records.
    """
    dlq = dead_letter_stream(stream)
    if ids is not None:
        return (yield from once(XDel(dlq, ids))) if ids else 0
    count, _ = yield from run_batch(Batch((XLen(dlq), Delete(dlq)), transaction=True))
    return int(count)
