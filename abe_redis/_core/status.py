"""The queue's state for operators, as typed values, in a bounded number of round trips.

:func:`queue_status` reads, for each stream and each of its groups: the
stream's length, the group's lag (entries not yet delivered to it), its
pending entries (how many, the oldest one's age, who holds what, how often
delivered), its consumers, and the stream's dead letters. Three round trips
whatever the number of streams (each a batch, split by node on a cluster):
the server's version, role and clock; the streams and their groups; the
groups' pending lists and consumers. Nothing scans the keyspace.

Bounds: the delivery counts are read from the oldest :data:`PENDING_SAMPLE`
pending entries of a group (``sampled`` says when there are more), and a
lag Redis does not give (XINFO GROUPS answers nil after deletions inside
the group's range, and before Redis 7.0) is counted with XRANGE up to
:data:`LAG_SCAN` entries (``lag_exact`` says when the count stopped there).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import RemoteProtocolError
from .commands import (
    Arg,
    Command,
    Exists,
    XInfoConsumers,
    XInfoGroups,
    XLen,
    XPendingRange,
    XRange,
    _check,
    _NoKey,
)
from .deadletters import dead_letter_stream
from .entries import ConsumerInfo, GroupInfo, PendingEntry, StreamEntry
from .ids import id_ms
from .replies import ErrorReply, integer, text
from .sentinel import Role
from .steps import Batch, Flow

PENDING_SAMPLE = 1000
LAG_SCAN = 1000


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """One consumer group of a stream.

    ``lag``: entries of the stream not delivered to the group yet (None when
    the stream has none to compare: never for a live group). ``oldest_pending_age_ms``:
    how long ago the oldest pending entry was published; ``oldest_pending_idle_ms``:
    how long since it was last delivered. ``deliveries``: (delivery count,
    entries) for the pending entries read (``sampled``: not all were);
    ``consumers``: each one's pending entries and ms since it last read.
    """

    name: str
    lag: int
    lag_exact: bool
    pending: int
    oldest_pending_id: str | None
    oldest_pending_age_ms: int | None
    oldest_pending_idle_ms: int | None
    deliveries: tuple[tuple[int, int], ...]
    sampled: bool
    consumers: tuple[ConsumerInfo, ...]
    last_delivered_id: str


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """One stream: its length, groups and dead letters."""

    name: str
    exists: bool
    length: int
    groups: tuple[GroupStatus, ...]
    dead_letters: int
    oldest_dead_letter_age_ms: int | None


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """The server answering: ``Redis 7.0.15``, ``Valkey 9.1.2``; its role; the
    topology (``single``, ``cluster`` or ``sentinel``; the flow says ``single``
    and the backend, which knows, puts it right)."""

    version: str
    role: str
    topology: str


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """The whole picture, read at ``time_ms`` (the server's clock)."""

    server: ServerStatus
    time_ms: int
    streams: tuple[StreamStatus, ...]


@dataclass(frozen=True, slots=True)
class ServerInfo(_NoKey, Command[str]):
    """INFO server: the engine and version, as ``Redis 7.0.15`` or ``Valkey 9.1.2``."""

    name: ClassVar[str] = "INFO"

    def to_args(self) -> tuple[Arg, ...]:
        return ("INFO", "server")

    def parse_reply(self, raw: Any) -> str:
        fields = {}
        for line in text(_check(self, raw)).splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if "valkey_version" in fields:
            return f"Valkey {fields['valkey_version']}"
        return f"Redis {fields.get('redis_version', 'unknown')}"


@dataclass(frozen=True, slots=True)
class ServerTime(_NoKey, Command[int]):
    """TIME: the server's clock in milliseconds (entry ids are made from it)."""

    name: ClassVar[str] = "TIME"

    def to_args(self) -> tuple[Arg, ...]:
        return ("TIME",)

    def parse_reply(self, raw: Any) -> int:
        raw = _check(self, raw)
        if not isinstance(raw, list | tuple) or len(raw) != 2:
            raise RemoteProtocolError("TIME reply is not [seconds, microseconds]")
        return integer(raw[0]) * 1000 + integer(raw[1]) // 1000


def queue_status(streams: Sequence[str]) -> Flow[QueueStatus]:
    """Flow: the status of ``streams`` (see the module docstring)."""
    info, role, clock = ServerInfo(), Role(), ServerTime()
    version, server_role, now = (yield Batch((info, role, clock))).reply
    server = ServerStatus(info.parse_reply(version), role.parse_reply(server_role), "single")
    now_ms = clock.parse_reply(now)
    if not streams:
        return QueueStatus(server, now_ms, ())
    per_stream = [_stream_commands(s) for s in streams]
    raw = (yield Batch(tuple(c for cmds in per_stream for c in cmds))).reply
    found = [_stream_found(c, r) for c, r in zip(per_stream, _split(raw, per_stream), strict=True)]
    per_group = [
        [(g, _group_commands(stream, g)) for g in groups]
        for stream, (_, _, groups, _, _) in zip(streams, found, strict=True)
    ]
    asked = [cmds for groups in per_group for _, cmds in groups]
    replies = (yield Batch(tuple(c for cmds in asked for c in cmds))).reply if asked else []
    answers = iter(_split(replies, asked))
    out = []
    for stream, (exists, length, _, dead, oldest_dead), groups in zip(
        streams, found, per_group, strict=True
    ):
        statuses = tuple(_group_status(g, cmds, next(answers), now_ms) for g, cmds in groups)
        age = None if oldest_dead is None else max(0, now_ms - id_ms(oldest_dead.id))
        out.append(StreamStatus(stream, exists, length, statuses, dead, age))
    return QueueStatus(server, now_ms, tuple(out))


def _split(raw: Sequence[Any], asked: Sequence[Sequence[Command[Any]]]) -> list[Sequence[Any]]:
    """The replies of one flat batch, cut back into the groups of commands it was made of."""
    parts, at = [], 0
    for cmds in asked:
        parts.append(raw[at : at + len(cmds)])
        at += len(cmds)
    return parts


def _stream_commands(stream: str) -> tuple[Command[Any], ...]:
    dlq = dead_letter_stream(stream)
    return (Exists(stream), XLen(stream), XInfoGroups(stream), XLen(dlq), XRange(dlq, count=1))


def _stream_found(
    cmds: tuple[Command[Any], ...], raw: Sequence[Any]
) -> tuple[bool, int, tuple[GroupInfo, ...], int, StreamEntry | None]:
    exists = bool(cmds[0].parse_reply(raw[0]))
    length = int(cmds[1].parse_reply(raw[1]))
    # XINFO GROUPS fails on a missing key; EXISTS in the same batch says so.
    groups: tuple[GroupInfo, ...] = cmds[2].parse_reply(raw[2]) if exists else ()
    dead = int(cmds[3].parse_reply(raw[3]))
    oldest: tuple[StreamEntry, ...] = cmds[4].parse_reply(raw[4])
    return exists, length, groups, dead, oldest[0] if oldest else None


def _group_commands(stream: str, group: GroupInfo) -> list[Command[Any]]:
    cmds: list[Command[Any]] = [
        XInfoConsumers(stream, group.name),
        XPendingRange(stream, group.name, count=PENDING_SAMPLE),
    ]
    if group.lag is None:
        cmds.append(XRange(stream, "(" + group.last_delivered_id, "+", LAG_SCAN))
    return cmds


def _group_status(
    group: GroupInfo, cmds: list[Command[Any]], raw: Sequence[Any], now_ms: int
) -> GroupStatus:
    if any(isinstance(r, ErrorReply) for r in raw):
        for cmd, r in zip(cmds, raw, strict=True):
            cmd.parse_reply(r)  # raises the first error, typed
    consumers: tuple[ConsumerInfo, ...] = cmds[0].parse_reply(raw[0])
    pending: tuple[PendingEntry, ...] = cmds[1].parse_reply(raw[1])
    if group.lag is not None:
        lag, exact = group.lag, True
    else:
        counted = len(cmds[2].parse_reply(raw[2]))
        lag, exact = counted, counted < LAG_SCAN
    oldest = pending[0] if pending else None
    counts = Counter(p.deliveries for p in pending)
    return GroupStatus(
        name=group.name,
        lag=lag,
        lag_exact=exact,
        pending=group.pending,
        oldest_pending_id=None if oldest is None else oldest.id,
        oldest_pending_age_ms=None if oldest is None else max(0, now_ms - id_ms(oldest.id)),
        oldest_pending_idle_ms=None if oldest is None else oldest.idle_ms,
        deliveries=tuple(sorted(counts.items())),
        sampled=group.pending > len(pending),
        consumers=consumers,
        last_delivered_id=group.last_delivered_id,
    )
