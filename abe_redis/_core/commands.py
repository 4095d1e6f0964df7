"""One frozen dataclass per Redis command.

Each command owns both directions: :meth:`Command.to_args` builds the
arguments, :meth:`Command.parse_reply` turns the raw reply (RESP2 or RESP3
shape, bytes not decoded, error replies passed as :class:`ErrorReply`) into a
typed value. A reply of the wrong shape raises :class:`RemoteProtocolError`;
an error reply the command does not expect raises :class:`CommandError`,
except the ones Redis sends while it cannot run any command yet
(:data:`TRANSIENT_CODES`): those raise :class:`ServerBusy`, a transport error,
so flows retry them as they retry a lost connection.

Every command touches at most one key, so that a cluster transport can route
each to its slot; :class:`Pipeline` and :class:`AnyOf` group commands without
merging them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from ..errors import CommandError, RemoteProtocolError, ServerBusy
from .entries import (
    ClaimPage,
    ConsumerInfo,
    ConsumerPending,
    ErrorReply,
    GroupInfo,
    PendingEntry,
    PendingSummary,
    StreamEntry,
)

T = TypeVar("T")
Arg = str | bytes | int

# Error codes of a server that is up but runs no command for now: loading its
# data set after a restart, stuck in a slow script, or (replica, cluster)
# cut off. The command did not run, and the same command works later.
TRANSIENT_CODES = frozenset({"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"})


def text(value: Any) -> str:
    """Decode a bulk string reply (bytes or str) to str."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        return value
    raise RemoteProtocolError(f"expected a bulk string, got {type(value).__name__}")


def integer(value: Any) -> int:
    """Decode an integer reply, which Redis sometimes sends as a bulk string."""
    if isinstance(value, bool):
        raise RemoteProtocolError("expected an integer, got a boolean")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise RemoteProtocolError(f"expected an integer, got {value!r:.60}") from None


def _pairs(value: Any) -> Mapping[str, Any]:
    """A RESP3 map or a RESP2 flat list of alternating names and values."""
    if isinstance(value, Mapping):
        return {text(k): v for k, v in value.items()}
    if isinstance(value, list | tuple) and len(value) % 2 == 0:
        return {text(value[i]): value[i + 1] for i in range(0, len(value), 2)}
    raise RemoteProtocolError(f"expected a map, got {type(value).__name__}")


def _fields(value: Any) -> tuple[tuple[bytes, bytes], ...] | None:
    if value is None:
        return None
    # Hot path: the one-field entries we write ([b"data", b"{...}"]).
    if type(value) is list and len(value) == 2:
        name, val = value
        if type(name) is bytes and type(val) is bytes:
            return ((name, val),)
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, list | tuple) and len(value) % 2 == 0:
        items = [(value[i], value[i + 1]) for i in range(0, len(value), 2)]
    else:
        raise RemoteProtocolError("stream entry fields are not name/value pairs")
    out = []
    for name, val in items:
        if not isinstance(name, bytes | str) or not isinstance(val, bytes | str):
            raise RemoteProtocolError("stream entry field is not a string")
        out.append(
            (
                name if isinstance(name, bytes) else name.encode(),
                val if isinstance(val, bytes) else val.encode(),
            )
        )
    return tuple(out)


def parse_entries(stream: str, value: Any) -> tuple[StreamEntry, ...]:
    """Parse a list of ``[id, fields]`` pairs as XRANGE-like commands return them."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise RemoteProtocolError("stream entries are not a list")
    entries = []
    for item in value:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise RemoteProtocolError("stream entry is not an [id, fields] pair")
        entries.append(StreamEntry(stream, text(item[0]), _fields(item[1])))
    return tuple(entries)


@dataclass(frozen=True, slots=True)
class GroupMissing:
    """Redis answered NOGROUP: the stream or its consumer group no longer exists."""

    stream: str


class Command(Generic[T]):
    """Base of all commands: arguments out, typed value in."""

    __slots__ = ()
    name: ClassVar[str] = ""

    def to_args(self) -> tuple[Arg, ...]:
        """The command's arguments, name first."""
        raise NotImplementedError

    def parse_reply(self, raw: Any) -> T:
        """Turn the raw reply into a value; see the module docstring for errors."""
        raise NotImplementedError

    def fail(self, raw: ErrorReply) -> CommandError | ServerBusy:
        """The error for an error reply this command does not act on."""
        if raw.code in TRANSIENT_CODES:
            return ServerBusy(f"Redis cannot run {self.name} yet: {raw.message}")
        return CommandError(f"{self.name} failed: {raw.message}")


def _check(cmd: Command[Any], raw: Any) -> Any:
    if isinstance(raw, ErrorReply):
        raise cmd.fail(raw)
    return raw


@dataclass(frozen=True, slots=True)
class Ping(Command[bool]):
    """PING: proves the connection and credentials work."""

    name: ClassVar[str] = "PING"

    def to_args(self) -> tuple[Arg, ...]:
        return ("PING",)

    def parse_reply(self, raw: Any) -> bool:
        return text(_check(self, raw)).upper() == "PONG"


@dataclass(frozen=True, slots=True)
class XAdd(Command[str]):
    """XADD with an auto id, optionally capped by MAXLEN (exact or ``~``)."""

    name: ClassVar[str] = "XADD"
    stream: str
    fields: tuple[tuple[bytes, bytes], ...]
    maxlen: int | None = None
    approximate: bool = True

    def to_args(self) -> tuple[Arg, ...]:
        args: list[Arg] = ["XADD", self.stream]
        if self.maxlen is not None:
            args += ["MAXLEN", "~" if self.approximate else "=", self.maxlen]
        args.append("*")
        for name, value in self.fields:
            args += [name, value]
        return tuple(args)

    def parse_reply(self, raw: Any) -> str:
        return text(_check(self, raw))


@dataclass(frozen=True, slots=True)
class SAdd(Command[int]):
    """SADD of one member; the registry of streams uses it."""

    name: ClassVar[str] = "SADD"
    key: str
    member: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("SADD", self.key, self.member)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class SMembers(Command[frozenset[str]]):
    """SMEMBERS: every stream name in the registry."""

    name: ClassVar[str] = "SMEMBERS"
    key: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("SMEMBERS", self.key)

    def parse_reply(self, raw: Any) -> frozenset[str]:
        raw = _check(self, raw)
        if not isinstance(raw, list | tuple | set | frozenset):
            raise RemoteProtocolError("SMEMBERS reply is not a set")
        return frozenset(text(m) for m in raw)


@dataclass(frozen=True, slots=True)
class SRem(Command[int]):
    """SREM of one member."""

    name: ClassVar[str] = "SREM"
    key: str
    member: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("SREM", self.key, self.member)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class Delete(Command[int]):
    """DEL of one key; the reply counts keys removed."""

    name: ClassVar[str] = "DEL"
    key: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("DEL", self.key)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class XLen(Command[int]):
    """XLEN: number of entries in a stream (0 when it does not exist)."""

    name: ClassVar[str] = "XLEN"
    stream: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("XLEN", self.stream)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class XGroupCreate(Command[bool]):
    """XGROUP CREATE ... MKSTREAM; True when created, False when it existed."""

    name: ClassVar[str] = "XGROUP CREATE"
    stream: str
    group: str
    start_id: str = "0"

    def to_args(self) -> tuple[Arg, ...]:
        return ("XGROUP", "CREATE", self.stream, self.group, self.start_id, "MKSTREAM")

    def parse_reply(self, raw: Any) -> bool:
        if isinstance(raw, ErrorReply) and raw.code == "BUSYGROUP":
            return False
        _check(self, raw)
        return True


@dataclass(frozen=True, slots=True)
class XReadGroup(Command["tuple[StreamEntry, ...] | GroupMissing"]):
    """XREADGROUP on one stream.

    ``start_id`` is ``>`` for new entries, or an id to re-read our own pending ones.
    """

    name: ClassVar[str] = "XREADGROUP"
    group: str
    consumer: str
    stream: str
    start_id: str = ">"
    count: int = 1
    block_ms: int | None = None

    def to_args(self) -> tuple[Arg, ...]:
        args: list[Arg] = ["XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", self.count]
        if self.block_ms is not None:
            args += ["BLOCK", self.block_ms]
        return (*args, "STREAMS", self.stream, self.start_id)

    def parse_reply(self, raw: Any) -> tuple[StreamEntry, ...] | GroupMissing:
        if isinstance(raw, ErrorReply) and raw.code == "NOGROUP":
            return GroupMissing(self.stream)
        raw = _check(self, raw)
        if raw is None:
            return ()
        if isinstance(raw, Mapping):
            streams = list(raw.items())
        elif isinstance(raw, list | tuple):
            streams = []
            for item in raw:
                if not isinstance(item, list | tuple) or len(item) != 2:
                    raise RemoteProtocolError("XREADGROUP reply is not [stream, entries] pairs")
                streams.append((item[0], item[1]))
        else:
            raise RemoteProtocolError("XREADGROUP reply is neither a map nor a list")
        out: list[StreamEntry] = []
        for name, entries in streams:
            if text(name) != self.stream:
                raise RemoteProtocolError(f"XREADGROUP answered for stream {text(name)!r}")
            out.extend(parse_entries(self.stream, entries))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class XAck(Command[int]):
    """XACK of some ids of one stream; the reply counts those that were pending."""

    name: ClassVar[str] = "XACK"
    stream: str
    group: str
    ids: tuple[str, ...]

    def to_args(self) -> tuple[Arg, ...]:
        return ("XACK", self.stream, self.group, *self.ids)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class XAutoClaim(Command["ClaimPage | GroupMissing"]):
    """XAUTOCLAIM: take over entries idle for at least ``min_idle_ms``."""

    name: ClassVar[str] = "XAUTOCLAIM"
    stream: str
    group: str
    consumer: str
    min_idle_ms: int
    start: str = "0-0"
    count: int = 100

    def to_args(self) -> tuple[Arg, ...]:
        return (
            "XAUTOCLAIM",
            self.stream,
            self.group,
            self.consumer,
            self.min_idle_ms,
            self.start,
            "COUNT",
            self.count,
        )

    def parse_reply(self, raw: Any) -> ClaimPage | GroupMissing:
        if isinstance(raw, ErrorReply) and raw.code == "NOGROUP":
            return GroupMissing(self.stream)
        raw = _check(self, raw)
        # Redis 6.2 answers two elements; 7.0 adds the ids it dropped as deleted.
        if not isinstance(raw, list | tuple) or len(raw) not in (2, 3):
            raise RemoteProtocolError("XAUTOCLAIM reply is not a 2- or 3-element list")
        deleted = tuple(text(i) for i in raw[2]) if len(raw) == 3 and raw[2] else ()
        return ClaimPage(text(raw[0]), parse_entries(self.stream, raw[1]), deleted)


@dataclass(frozen=True, slots=True)
class XClaimIds(Command[tuple[str, ...]]):
    """XCLAIM ... JUSTID: take ids without touching their delivery counter.

    With ``idle_ms`` it sets their idle time: claimed to ourselves with the
    claim threshold as idle time, entries are *released*, and any live
    consumer's next XAUTOCLAIM takes them.
    """

    name: ClassVar[str] = "XCLAIM"
    stream: str
    group: str
    consumer: str
    ids: tuple[str, ...]
    idle_ms: int | None = None

    def to_args(self) -> tuple[Arg, ...]:
        idle: tuple[Arg, ...] = () if self.idle_ms is None else ("IDLE", self.idle_ms)
        return ("XCLAIM", self.stream, self.group, self.consumer, 0, *self.ids, *idle, "JUSTID")

    def parse_reply(self, raw: Any) -> tuple[str, ...]:
        raw = _check(self, raw)
        if not isinstance(raw, list | tuple):
            raise RemoteProtocolError("XCLAIM reply is not a list")
        return tuple(text(i) for i in raw)


@dataclass(frozen=True, slots=True)
class XClaimEntries(Command["tuple[StreamEntry, ...] | GroupMissing"]):
    """XCLAIM returning the entries; counts one more delivery for each."""

    name: ClassVar[str] = "XCLAIM"
    stream: str
    group: str
    consumer: str
    ids: tuple[str, ...]
    min_idle_ms: int = 0

    def to_args(self) -> tuple[Arg, ...]:
        return ("XCLAIM", self.stream, self.group, self.consumer, self.min_idle_ms, *self.ids)

    def parse_reply(self, raw: Any) -> tuple[StreamEntry, ...] | GroupMissing:
        if isinstance(raw, ErrorReply) and raw.code == "NOGROUP":
            return GroupMissing(self.stream)
        raw = _check(self, raw)
        # Entries deleted from the stream come back as nil (Redis 6) or not at all (7).
        return parse_entries(self.stream, [e for e in raw or () if e is not None])


@dataclass(frozen=True, slots=True)
class XRange(Command[tuple[StreamEntry, ...]]):
    """XRANGE with a COUNT."""

    name: ClassVar[str] = "XRANGE"
    stream: str
    start: str = "-"
    end: str = "+"
    count: int = 100

    def to_args(self) -> tuple[Arg, ...]:
        return ("XRANGE", self.stream, self.start, self.end, "COUNT", self.count)

    def parse_reply(self, raw: Any) -> tuple[StreamEntry, ...]:
        return parse_entries(self.stream, _check(self, raw))


@dataclass(frozen=True, slots=True)
class XDel(Command[int]):
    """XDEL of some ids; the reply counts those that existed."""

    name: ClassVar[str] = "XDEL"
    stream: str
    ids: tuple[str, ...]

    def to_args(self) -> tuple[Arg, ...]:
        return ("XDEL", self.stream, *self.ids)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class XTrimMinId(Command[int]):
    """XTRIM MINID ~ id: drop entries older than ``min_id``; the reply counts them."""

    name: ClassVar[str] = "XTRIM"
    stream: str
    min_id: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("XTRIM", self.stream, "MINID", "~", self.min_id)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class XTrimMaxLen(Command[int]):
    """XTRIM MAXLEN ~ n."""

    name: ClassVar[str] = "XTRIM"
    stream: str
    maxlen: int

    def to_args(self) -> tuple[Arg, ...]:
        return ("XTRIM", self.stream, "MAXLEN", "~", self.maxlen)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class XInfoConsumers(Command[tuple[ConsumerInfo, ...]]):
    """XINFO CONSUMERS of one group."""

    name: ClassVar[str] = "XINFO CONSUMERS"
    stream: str
    group: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("XINFO", "CONSUMERS", self.stream, self.group)

    def parse_reply(self, raw: Any) -> tuple[ConsumerInfo, ...]:
        raw = _check(self, raw)
        if not isinstance(raw, list | tuple):
            raise RemoteProtocolError("XINFO CONSUMERS reply is not a list")
        rows = []
        for row in raw:
            info = _pairs(row)
            try:
                rows.append(
                    ConsumerInfo(
                        text(info["name"]), integer(info["pending"]), integer(info["idle"])
                    )
                )
            except KeyError as exc:
                raise RemoteProtocolError(f"XINFO CONSUMERS row lacks {exc}") from None
        return tuple(rows)


@dataclass(frozen=True, slots=True)
class NoScript:
    """Redis does not have the script cached yet; send it with EVAL."""


@dataclass(frozen=True, slots=True)
class EvalSha(Command[Any]):
    """EVALSHA of a cached script; NOSCRIPT is a value (send EVAL next)."""

    name: ClassVar[str] = "EVALSHA"
    sha: str
    keys: tuple[str, ...]
    args: tuple[Arg, ...]

    def to_args(self) -> tuple[Arg, ...]:
        return ("EVALSHA", self.sha, len(self.keys), *self.keys, *self.args)

    def parse_reply(self, raw: Any) -> Any:
        if isinstance(raw, ErrorReply) and raw.code == "NOSCRIPT":
            return NoScript()
        return _check(self, raw)


@dataclass(frozen=True, slots=True)
class Eval(Command[Any]):
    """EVAL: run (and cache) a script."""

    name: ClassVar[str] = "EVAL"
    source: str
    keys: tuple[str, ...]
    args: tuple[Arg, ...]

    def to_args(self) -> tuple[Arg, ...]:
        return ("EVAL", self.source, len(self.keys), *self.keys, *self.args)

    def parse_reply(self, raw: Any) -> Any:
        return _check(self, raw)


@dataclass(frozen=True, slots=True)
class XPendingSummary(Command[PendingSummary]):
    """XPENDING in its summary form."""

    name: ClassVar[str] = "XPENDING"
    stream: str
    group: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("XPENDING", self.stream, self.group)

    def parse_reply(self, raw: Any) -> PendingSummary:
        raw = _check(self, raw)
        if not isinstance(raw, list | tuple) or len(raw) != 4:
            raise RemoteProtocolError("XPENDING summary is not a 4-element list")
        consumers = tuple(ConsumerPending(text(row[0]), integer(row[1])) for row in (raw[3] or ()))
        return PendingSummary(
            integer(raw[0]),
            None if raw[1] is None else text(raw[1]),
            None if raw[2] is None else text(raw[2]),
            consumers,
        )


@dataclass(frozen=True, slots=True)
class XPendingRange(Command[tuple[PendingEntry, ...]]):
    """XPENDING in its extended form: per-entry owner, idle time and delivery count."""

    name: ClassVar[str] = "XPENDING"
    stream: str
    group: str
    start: str = "-"
    end: str = "+"
    count: int = 100
    consumer: str | None = None

    def to_args(self) -> tuple[Arg, ...]:
        args: tuple[Arg, ...] = (
            "XPENDING",
            self.stream,
            self.group,
            self.start,
            self.end,
            self.count,
        )
        return args if self.consumer is None else (*args, self.consumer)

    def parse_reply(self, raw: Any) -> tuple[PendingEntry, ...]:
        if isinstance(raw, ErrorReply) and raw.code == "NOGROUP":
            return ()  # no group, so nothing is pending in it
        raw = _check(self, raw)
        if not isinstance(raw, list | tuple):
            raise RemoteProtocolError("XPENDING reply is not a list")
        rows = []
        for row in raw:
            if not isinstance(row, list | tuple) or len(row) != 4:
                raise RemoteProtocolError("XPENDING row is not a 4-element list")
            rows.append(PendingEntry(text(row[0]), text(row[1]), integer(row[2]), integer(row[3])))
        return tuple(rows)


@dataclass(frozen=True, slots=True)
class XInfoGroups(Command[tuple[GroupInfo, ...]]):
    """XINFO GROUPS: every consumer group of a stream."""

    name: ClassVar[str] = "XINFO GROUPS"
    stream: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("XINFO", "GROUPS", self.stream)

    def parse_reply(self, raw: Any) -> tuple[GroupInfo, ...]:
        if isinstance(raw, ErrorReply) and "no such key" in raw.message:
            return ()
        raw = _check(self, raw)
        if not isinstance(raw, list | tuple):
            raise RemoteProtocolError("XINFO GROUPS reply is not a list")
        groups = []
        for row in raw:
            info = _pairs(row)
            try:
                groups.append(
                    GroupInfo(
                        name=text(info["name"]),
                        consumers=integer(info["consumers"]),
                        pending=integer(info["pending"]),
                        last_delivered_id=text(info["last-delivered-id"]),
                        entries_read=_optional_int(info.get("entries-read")),
                        lag=_optional_int(info.get("lag")),
                    )
                )
            except KeyError as exc:
                raise RemoteProtocolError(f"XINFO GROUPS row lacks {exc}") from None
        return tuple(groups)


def _optional_int(value: Any) -> int | None:
    return None if value is None else integer(value)


@dataclass(frozen=True, slots=True)
class Pipeline(Command[tuple[Any, ...]]):
    """Several commands sent in one round trip; the raw reply is one reply per command.

    Without ``transaction`` each command stands alone (and may go to its own
    cluster node); with it they run inside MULTI/EXEC.
    """

    name: ClassVar[str] = "PIPELINE"
    commands: tuple[Command[Any], ...]
    transaction: bool = False

    def to_args(self) -> tuple[Arg, ...]:
        raise TypeError("a Pipeline is sent command by command; use .commands")

    def parse_reply(self, raw: Any) -> tuple[Any, ...]:
        if not isinstance(raw, Sequence) or len(raw) != len(self.commands):
            raise RemoteProtocolError("pipeline reply does not match its commands")
        return tuple(cmd.parse_reply(r) for cmd, r in zip(self.commands, raw, strict=True))


@dataclass(frozen=True, slots=True)
class NotRun:
    """Placeholder reply of an :class:`AnyOf` member that was cancelled."""


NOT_RUN = NotRun()


@dataclass(frozen=True, slots=True)
class AnyOf(Command[tuple[Any, ...]]):
    """Commands run concurrently, each on its own connection, until the first answers.

    Used for blocking reads of several streams without one command touching
    several keys. The raw reply holds each command's reply, or
    :data:`NOT_RUN` for those cancelled once the first had answered; a
    cancelled read may still have been served by Redis, so the caller must
    re-read its own pending entries for those streams.
    """

    name: ClassVar[str] = "ANYOF"
    commands: tuple[Command[Any], ...]

    def to_args(self) -> tuple[Arg, ...]:
        raise TypeError("AnyOf is run command by command; use .commands")

    def parse_reply(self, raw: Any) -> tuple[Any, ...]:
        if not isinstance(raw, Sequence) or len(raw) != len(self.commands):
            raise RemoteProtocolError("AnyOf reply does not match its commands")
        return tuple(
            NOT_RUN if r is NOT_RUN else cmd.parse_reply(r)
            for cmd, r in zip(self.commands, raw, strict=True)
        )
