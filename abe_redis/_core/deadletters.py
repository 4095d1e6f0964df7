"""Dead letters: entries that cannot be processed, kept in a stream of their own.

This module owns the dead-letter naming and records. The dead letters of
stream ``S`` live in ``abe_redis:dlq:{T}:S``, where ``T`` is ``S``'s hash tag
(or ``S`` itself, see :func:`~.slots.slot_tag`), so they share ``S``'s
cluster slot and move together with it. An entry is moved with ``XADD`` to
that stream and ``XACK`` in one MULTI, so it is never both pending and
dead-lettered, and never neither. A record holds why the entry died and,
for entries we wrote, its ``data`` field unchanged, so replaying it
re-publishes the exact payload. Replay and purge are atomic per record
(replay: ``XADD`` to the source and ``XDEL`` from the dead-letter stream in
one MULTI; purge of everything: count and delete in one MULTI).

Versions before 0.3 kept them in ``S:dlq`` (another slot than ``S``'s on a
cluster). The dead-letter tools move such records to the current name, one
MULTI per record, the first time they touch ``S``
(:func:`adopt_legacy`); consumers only ever write the current name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import RemoteProtocolError
from .codec import FIELD, decode_entry
from .commands import Command, Delete, XAck, XAdd, XDel, XLen, XRange
from .entries import DeadLetter, Delivery, StreamEntry
from .slots import slot_tag
from .steps import Batch, Flow, once, run_batch

DLQ_PREFIX = "abe_redis:dlq:"
LEGACY_DLQ_SUFFIX = ":dlq"
MAX_ERROR_CHARS = 1000
PAGE = 100


def dead_letter_stream(stream: str) -> str:
    """Where entries of ``stream`` go when they cannot be processed (its slot)."""
    return f"{DLQ_PREFIX}{{{slot_tag(stream)}}}:{stream}"


def legacy_dead_letter_stream(stream: str) -> str:
    """Where versions before 0.3 kept the dead letters of ``stream``."""
    return stream + LEGACY_DLQ_SUFFIX


def adopt_legacy(stream: str) -> Flow[int]:
    """Flow: move the records of ``stream``'s legacy dead-letter stream to the
    current one; returns how many moved (one XLEN when there are none).

    Each record moves in one MULTI (XADD to the new stream, XDEL from the
    old), so a record is never in both or neither; it gets a new id. The
    emptied legacy stream is left (a consumer of an older version may
    still write to it during an upgrade; the next tool call moves that too).
    """
    legacy = legacy_dead_letter_stream(stream)
    if not (yield from once(XLen(legacy))):
        return 0
    target = dead_letter_stream(stream)
    moved = 0
    while True:
        page = yield from once(XRange(legacy, "-", "+", PAGE))
        for entry in page:
            yield from run_batch(
                Batch(
                    (XAdd(target, entry.fields or ()), XDel(legacy, (entry.id,))),
                    transaction=True,
                )
            )
        moved += len(page)
        if len(page) < PAGE:
            return moved


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
    yield from adopt_legacy(stream)
    entries = yield from once(XRange(dead_letter_stream(stream), after, "+", count))
    return tuple(parse_dead_letter(e) for e in entries)


def count_dead_letters(stream: str) -> Flow[int]:
    """Flow: how many dead letters ``stream`` has."""
    yield from adopt_legacy(stream)
    return (yield from once(XLen(dead_letter_stream(stream))))


def _selected(stream: str, ids: tuple[str, ...] | None) -> Flow[list[DeadLetter]]:
    yield from adopt_legacy(stream)
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
    yield from adopt_legacy(stream)
    dlq = dead_letter_stream(stream)
    if ids is not None:
        return (yield from once(XDel(dlq, ids))) if ids else 0
    count, _ = yield from run_batch(Batch((XLen(dlq), Delete(dlq)), transaction=True))
    return int(count)
