"""One frozen dataclass per Redis command.

Each command owns both directions: :meth:`Command.to_args` builds the
arguments, :meth:`Command.parse_reply` turns the raw reply (RESP2 or RESP3
shape, bytes not decoded, error replies passed as
:class:`~abe_redis._core.replies.ErrorReply`) into a typed value. A reply of
the wrong shape raises :class:`RemoteProtocolError`. An error reply the
command does not act on raises by its kind (:data:`~.replies.ERROR_KINDS`):
:class:`ServerBusy` when the server cannot run commands yet (flows retry it
like a lost connection), :class:`CommandError` otherwise.

Every command declares the keys it touches (:attr:`Command.keys`), which is
what a router places it by; none touches keys of two cluster slots. Several
commands travel together as a :class:`~abe_redis._core.steps.Batch`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from ..errors import AccessDenied, CommandError, OutOfMemory, RemoteProtocolError, ServerBusy
from .entries import (
    ClaimPage,
    ConsumerInfo,
    ConsumerPending,
    GroupInfo,
    PendingEntry,
    PendingSummary,
    StreamEntry,
)
from .replies import (
    ErrorKind,
    ErrorReply,
    integer,
    optional_integer,
    pairs,
    parse_entries,
    text,
)

T = TypeVar("T")
Arg = str | bytes | int


class Command(Generic[T]):
    """Base of all commands: arguments out, typed value in, keys declared."""

    __slots__ = ()
    name: ClassVar[str] = ""

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys the command touches (all in one cluster slot); () for none."""
        raise NotImplementedError

    def to_args(self) -> tuple[Arg, ...]:
        """The command's arguments, name first."""
        raise NotImplementedError

    def parse_reply(self, raw: Any) -> T:
        """Turn the raw reply into a value; see the module docstring for errors."""
        raise NotImplementedError

    def fail(self, raw: ErrorReply) -> CommandError | ServerBusy:
        """The error for an error reply this command does not act on (see
        :class:`~abe_redis._core.replies.ErrorKind`)."""
        kind = raw.kind
        if kind is ErrorKind.UNAVAILABLE or kind is ErrorKind.UNBLOCKED:
            return ServerBusy(f"Redis cannot run {self.name} now: {raw.message}")
        if kind is ErrorKind.REFUSED:
            return AccessDenied(f"Redis refused {self.name}: {raw.message}")
        if kind is ErrorKind.OUT_OF_MEMORY:
            return OutOfMemory(f"{self.name} refused, Redis is out of memory: {raw.message}")
        return CommandError(f"{self.name} failed: {raw.message}")


def _check(cmd: Command[Any], raw: Any) -> Any:
    if isinstance(raw, ErrorReply):
        raise cmd.fail(raw)
    return raw


class _OneStream:
    """Mixin: the command touches its ``stream`` only."""

    __slots__ = ()
    stream: str

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.stream,)


class _OneKey:
    """Mixin: the command touches its ``key`` only."""

    __slots__ = ()
    key: str

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)


class _NoKey:
    """Mixin: the command touches no key (any node can answer it)."""

    __slots__ = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class Ping(_NoKey, Command[bool]):
    """PING: proves the connection and credentials work."""

    name: ClassVar[str] = "PING"

    def to_args(self) -> tuple[Arg, ...]:
        return ("PING",)

    def parse_reply(self, raw: Any) -> bool:
        return text(_check(self, raw)).upper() == "PONG"


@dataclass(frozen=True, slots=True)
class Hello(_NoKey, Command[None]):
    """HELLO 3 (with AUTH when credentials are given): switch to RESP3."""

    name: ClassVar[str] = "HELLO"
    protocol: int
    username: str | None = None
    password: str | None = None

    def to_args(self) -> tuple[Arg, ...]:
        if self.password is None:
            return ("HELLO", self.protocol)
        return ("HELLO", self.protocol, "AUTH", self.username or "default", self.password)

    def parse_reply(self, raw: Any) -> None:
        _check(self, raw)

    def __repr__(self) -> str:  # never show the password
        return f"Hello(protocol={self.protocol}, username={self.username!r})"


@dataclass(frozen=True, slots=True)
class Auth(_NoKey, Command[None]):
    """AUTH [username] password."""

    name: ClassVar[str] = "AUTH"
    password: str
    username: str | None = None

    def to_args(self) -> tuple[Arg, ...]:
        user: tuple[Arg, ...] = () if self.username is None else (self.username,)
        return ("AUTH", *user, self.password)

    def parse_reply(self, raw: Any) -> None:
        _check(self, raw)

    def __repr__(self) -> str:  # never show the password
        return f"Auth(username={self.username!r})"


@dataclass(frozen=True, slots=True)
class Select(_NoKey, Command[None]):
    """SELECT db."""

    name: ClassVar[str] = "SELECT"
    db: int

    def to_args(self) -> tuple[Arg, ...]:
        return ("SELECT", self.db)

    def parse_reply(self, raw: Any) -> None:
        _check(self, raw)


@dataclass(frozen=True, slots=True)
class ClientSetName(_NoKey, Command[None]):
    """CLIENT SETNAME: how the connection shows in CLIENT LIST."""

    name: ClassVar[str] = "CLIENT SETNAME"
    client_name: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("CLIENT", "SETNAME", self.client_name)

    def parse_reply(self, raw: Any) -> None:
        _check(self, raw)


@dataclass(frozen=True, slots=True)
class GroupMissing:
    """Redis answered NOGROUP: the stream or its consumer group no longer exists."""

    stream: str


@dataclass(frozen=True, slots=True)
class Unblocked:
    """Redis ended a blocking read with UNBLOCKED: the stream or its group was
    deleted, or the server changed role, while the read waited."""

    stream: str
    message: str


@dataclass(frozen=True, slots=True)
class XAdd(_OneStream, Command["str | None"]):
    """XADD with an auto id, optionally capped by MAXLEN (exact or ``~``).

    With ``nomkstream`` a missing stream is not created: the reply is None
    and nothing was written (the stream vanished since it was registered).
    """

    name: ClassVar[str] = "XADD"
    stream: str
    fields: tuple[tuple[bytes, bytes], ...]
    maxlen: int | None = None
    approximate: bool = True
    nomkstream: bool = False

    def to_args(self) -> tuple[Arg, ...]:
        args: list[Arg] = ["XADD", self.stream]
        if self.nomkstream:
            args.append("NOMKSTREAM")
        if self.maxlen is not None:
            args += ["MAXLEN", "~" if self.approximate else "=", self.maxlen]
        args.append("*")
        for name, value in self.fields:
            args += [name, value]
        return tuple(args)

    def parse_reply(self, raw: Any) -> str | None:
        raw = _check(self, raw)
        return None if raw is None else text(raw)


@dataclass(frozen=True, slots=True)
class Wait(Command[int]):
    """WAIT: block until ``replicas`` replicas have every write sent before it
    on this connection, or ``timeout_ms`` passed; the reply counts them.

    WAIT touches no key, but it must go where the write to ``stream`` went,
    on the same connection: it declares ``stream`` as its key so a router
    places it there (in the same round trip as the write).
    """

    name: ClassVar[str] = "WAIT"
    stream: str
    replicas: int
    timeout_ms: int

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.stream,)

    def to_args(self) -> tuple[Arg, ...]:
        return ("WAIT", self.replicas, self.timeout_ms)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class SAdd(_OneKey, Command[int]):
    """SADD of one member; the registry of streams uses it."""

    name: ClassVar[str] = "SADD"
    key: str
    member: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("SADD", self.key, self.member)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class SMembers(_OneKey, Command[frozenset[str]]):
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
class SRem(_OneKey, Command[int]):
    """SREM of one member."""

    name: ClassVar[str] = "SREM"
    key: str
    member: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("SREM", self.key, self.member)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class Delete(_OneKey, Command[int]):
    """DEL of one key; the reply counts keys removed."""

    name: ClassVar[str] = "DEL"
    key: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("DEL", self.key)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class Exists(_OneKey, Command[bool]):
    """EXISTS of one key."""

    name: ClassVar[str] = "EXISTS"
    key: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("EXISTS", self.key)

    def parse_reply(self, raw: Any) -> bool:
        return integer(_check(self, raw)) > 0


@dataclass(frozen=True, slots=True)
class XLen(_OneStream, Command[int]):
    """XLEN: number of entries in a stream (0 when it does not exist)."""

    name: ClassVar[str] = "XLEN"
    stream: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("XLEN", self.stream)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class XGroupCreate(_OneStream, Command["bool | None"]):
    """XGROUP CREATE ... MKSTREAM; True when created, False when it existed.

    None when Redis is out of memory (OOM): it refuses before looking, so
    whether the group exists is unknown.
    """

    name: ClassVar[str] = "XGROUP CREATE"
    stream: str
    group: str
    start_id: str = "0"

    def to_args(self) -> tuple[Arg, ...]:
        return ("XGROUP", "CREATE", self.stream, self.group, self.start_id, "MKSTREAM")

    def parse_reply(self, raw: Any) -> bool | None:
        if isinstance(raw, ErrorReply):
            if raw.kind is ErrorKind.EXISTS:
                return False
            if raw.kind is ErrorKind.OUT_OF_MEMORY:
                return None
        _check(self, raw)
        return True


@dataclass(frozen=True, slots=True)
class XReadGroup(_OneStream, Command["tuple[StreamEntry, ...] | GroupMissing | Unblocked"]):
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

    def parse_reply(self, raw: Any) -> tuple[StreamEntry, ...] | GroupMissing | Unblocked:
        if isinstance(raw, ErrorReply):
            if raw.kind is ErrorKind.NO_GROUP:
                return GroupMissing(self.stream)
            if raw.kind is ErrorKind.UNBLOCKED:
                return Unblocked(self.stream, raw.message)
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
class XAck(_OneStream, Command[int]):
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
class XAutoClaim(_OneStream, Command["ClaimPage | GroupMissing"]):
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
        if isinstance(raw, ErrorReply) and raw.kind is ErrorKind.NO_GROUP:
            return GroupMissing(self.stream)
        raw = _check(self, raw)
        # Redis 6.2 answers two elements; 7.0 adds the ids it dropped as deleted.
        if not isinstance(raw, list | tuple) or len(raw) not in (2, 3):
            raise RemoteProtocolError("XAUTOCLAIM reply is not a 2- or 3-element list")
        deleted = tuple(text(i) for i in raw[2]) if len(raw) == 3 and raw[2] else ()
        return ClaimPage(text(raw[0]), parse_entries(self.stream, raw[1]), deleted)


@dataclass(frozen=True, slots=True)
class XClaimIds(_OneStream, Command[tuple[str, ...]]):
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
class XClaimEntries(_OneStream, Command["tuple[StreamEntry, ...] | GroupMissing"]):
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
        if isinstance(raw, ErrorReply) and raw.kind is ErrorKind.NO_GROUP:
            return GroupMissing(self.stream)
        raw = _check(self, raw)
        # Entries deleted from the stream come back as nil (Redis 6) or not at all (7).
        return parse_entries(self.stream, [e for e in raw or () if e is not None])


@dataclass(frozen=True, slots=True)
class XRange(_OneStream, Command[tuple[StreamEntry, ...]]):
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
class XDel(_OneStream, Command[int]):
    """XDEL of some ids; the reply counts those that existed."""

    name: ClassVar[str] = "XDEL"
    stream: str
    ids: tuple[str, ...]

    def to_args(self) -> tuple[Arg, ...]:
        return ("XDEL", self.stream, *self.ids)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class XTrimMinId(_OneStream, Command[int]):
    """XTRIM MINID [~] id: drop entries older than ``min_id``; the reply counts them."""

    name: ClassVar[str] = "XTRIM"
    stream: str
    min_id: str
    approximate: bool = True

    def to_args(self) -> tuple[Arg, ...]:
        return ("XTRIM", self.stream, "MINID", "~" if self.approximate else "=", self.min_id)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class XTrimMaxLen(_OneStream, Command[int]):
    """XTRIM MAXLEN ~ n."""

    name: ClassVar[str] = "XTRIM"
    stream: str
    maxlen: int

    def to_args(self) -> tuple[Arg, ...]:
        return ("XTRIM", self.stream, "MAXLEN", "~", self.maxlen)

    def parse_reply(self, raw: Any) -> int:
        return integer(_check(self, raw))


@dataclass(frozen=True, slots=True)
class XInfoConsumers(_OneStream, Command[tuple[ConsumerInfo, ...]]):
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
            info = pairs(row)
            try:
                inactive = integer(info["inactive"]) if "inactive" in info else -1
                rows.append(
                    ConsumerInfo(
                        text(info["name"]),
                        integer(info["pending"]),
                        integer(info["idle"]),
                        None if inactive < 0 else inactive,
                    )
                )
            except KeyError as exc:
                raise RemoteProtocolError(f"XINFO CONSUMERS row lacks {exc}") from None
        return tuple(rows)


@dataclass(frozen=True, slots=True)
class NoScript:
    """Redis does not have the script cached yet; send it with EVAL."""


_SCRIPT_LINE = re.compile(r"@user_script:(\d+)")
_REDIS_CALL = re.compile(r"redis\.p?call\(\s*'([A-Za-z]+)'(?:\s*,\s*'([A-Za-z]+)')?")


def _script_failed(cmd: EvalSha | Eval, raw: ErrorReply) -> CommandError | ServerBusy:
    """As :meth:`Command.fail`, naming the command a script was refused.

    Redis 7.0's refusal of a command inside a script names only the line
    (``... on @user_script:11``); the script's source says what runs there.
    """
    error = Command.fail(cmd, raw)
    if not isinstance(error, AccessDenied) or not cmd.source:
        return error
    line = _SCRIPT_LINE.search(raw.message)
    lines = cmd.source.split("\n")
    if line is None or not 0 < int(line[1]) <= len(lines):
        return error
    found = _REDIS_CALL.search(lines[int(line[1]) - 1])
    if found is None:
        return error
    refused = " ".join(w.upper() for w in found.groups() if w)
    return AccessDenied(f"Redis refused {refused} in a script ({cmd.name}): {raw.message}")


@dataclass(frozen=True, slots=True)
class EvalSha(Command[Any]):
    """EVALSHA of a cached script; NOSCRIPT is a value (send EVAL next).

    ``source`` (optional) names a refused command in errors.
    """

    name: ClassVar[str] = "EVALSHA"
    sha: str
    key_names: tuple[str, ...]
    args: tuple[Arg, ...]
    source: str = field(default="", compare=False, repr=False)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.key_names

    def to_args(self) -> tuple[Arg, ...]:
        return ("EVALSHA", self.sha, len(self.key_names), *self.key_names, *self.args)

    def parse_reply(self, raw: Any) -> Any:
        if isinstance(raw, ErrorReply) and raw.kind is ErrorKind.NO_SCRIPT:
            return NoScript()
        return _check(self, raw)

    def fail(self, raw: ErrorReply) -> CommandError | ServerBusy:
        return _script_failed(self, raw)


@dataclass(frozen=True, slots=True)
class Eval(Command[Any]):
    """EVAL: run (and cache) a script."""

    name: ClassVar[str] = "EVAL"
    source: str
    key_names: tuple[str, ...]
    args: tuple[Arg, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return self.key_names

    def to_args(self) -> tuple[Arg, ...]:
        return ("EVAL", self.source, len(self.key_names), *self.key_names, *self.args)

    def parse_reply(self, raw: Any) -> Any:
        return _check(self, raw)

    def fail(self, raw: ErrorReply) -> CommandError | ServerBusy:
        return _script_failed(self, raw)


@dataclass(frozen=True, slots=True)
class XPendingSummary(_OneStream, Command[PendingSummary]):
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
class XPendingRange(_OneStream, Command[tuple[PendingEntry, ...]]):
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
        if isinstance(raw, ErrorReply) and raw.kind is ErrorKind.NO_GROUP:
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
class XInfoGroups(_OneStream, Command[tuple[GroupInfo, ...]]):
    """XINFO GROUPS: every consumer group of a stream (an error if it does not
    exist: ask in a transaction with :class:`Exists`, see ``trimming.group_infos``)."""

    name: ClassVar[str] = "XINFO GROUPS"
    stream: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("XINFO", "GROUPS", self.stream)

    def parse_reply(self, raw: Any) -> tuple[GroupInfo, ...]:
        raw = _check(self, raw)
        if not isinstance(raw, list | tuple):
            raise RemoteProtocolError("XINFO GROUPS reply is not a list")
        groups = []
        for row in raw:
            info = pairs(row)
            try:
                groups.append(
                    GroupInfo(
                        name=text(info["name"]),
                        consumers=integer(info["consumers"]),
                        pending=integer(info["pending"]),
                        last_delivered_id=text(info["last-delivered-id"]),
                        entries_read=optional_integer(info.get("entries-read")),
                        lag=optional_integer(info.get("lag")),
                    )
                )
            except KeyError as exc:
                raise RemoteProtocolError(f"XINFO GROUPS row lacks {exc}") from None
        return tuple(groups)
