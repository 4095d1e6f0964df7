"""Raw replies: decoding helpers, and what each kind of error reply means.

Replies arrive undecoded (bytes, RESP2 or RESP3 shapes). An error reply is a
value, :class:`ErrorReply`, never an exception, until a command decides it
cannot act on it. Error replies are told apart by their code, the first
word Redis sends, through one table (:data:`ERROR_KINDS`); the wording after
the code is shown to people, never tested.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import RemoteProtocolError
from .entries import StreamEntry


class ErrorKind(enum.Enum):
    """What an error reply means for whoever sent the command."""

    UNAVAILABLE = "unavailable"
    """The server is up but runs no command for now (loading, a slow script,
    a cut-off replica or cluster, a primary turned replica, too few replicas
    to write). The command did not run; the same command works later, so it
    is retried like a lost connection."""

    UNBLOCKED = "unblocked"
    """A blocking read was ended by the server: its stream or group was
    deleted, or the server changed role. Nothing was delivered; read again
    (the next read finds the group missing, or the server read-only)."""

    OUT_OF_MEMORY = "out-of-memory"
    """``maxmemory`` is reached and the command would use more (OOM). The
    command did not run; trimming what every group has finished frees room."""

    EXISTS = "exists"
    """The thing to create exists already (BUSYGROUP)."""

    NO_GROUP = "no-group"
    """The consumer group, or its stream, does not exist (NOGROUP)."""

    NO_SCRIPT = "no-script"
    """The script is not cached; send it whole (NOSCRIPT)."""

    REFUSED = "refused"
    """The server refused the command for this client (NOPERM, NOAUTH,
    WRONGPASS): a setting to fix, never retried."""

    FAILED = "failed"
    """Anything else: the command is wrong for the data (WRONGTYPE, ERR...)."""


# The code (first word of the reply) -> its kind. Codes not listed are FAILED.
ERROR_KINDS: dict[str, ErrorKind] = {
    "LOADING": ErrorKind.UNAVAILABLE,
    "BUSY": ErrorKind.UNAVAILABLE,
    "MASTERDOWN": ErrorKind.UNAVAILABLE,
    "TRYAGAIN": ErrorKind.UNAVAILABLE,
    "CLUSTERDOWN": ErrorKind.UNAVAILABLE,
    "READONLY": ErrorKind.UNAVAILABLE,
    "NOREPLICAS": ErrorKind.UNAVAILABLE,
    # A cluster redirect the wire did not follow (too many in a row, or a
    # server not known to be a cluster node yet): retried after a backoff.
    "MOVED": ErrorKind.UNAVAILABLE,
    "ASK": ErrorKind.UNAVAILABLE,
    "UNBLOCKED": ErrorKind.UNBLOCKED,
    "OOM": ErrorKind.OUT_OF_MEMORY,
    "BUSYGROUP": ErrorKind.EXISTS,
    "NOGROUP": ErrorKind.NO_GROUP,
    "NOSCRIPT": ErrorKind.NO_SCRIPT,
    "NOPERM": ErrorKind.REFUSED,
    "NOAUTH": ErrorKind.REFUSED,
    "WRONGPASS": ErrorKind.REFUSED,
}


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An error reply from Redis, passed to the core as a value, not raised."""

    message: str

    @property
    def code(self) -> str:
        """The first word of the message, such as ``BUSYGROUP`` or ``NOGROUP``.

        ``ERR`` followed by a code we know is read as that code: fakeredis'
        TCP server (the demo's fallback) writes ``-ERR BUSYGROUP ...`` where
        Redis writes ``-BUSYGROUP ...``.
        """
        words = self.message.split(" ", 2)
        if words[0] == "ERR" and len(words) > 1 and words[1] in ERROR_KINDS:
            return words[1]
        return words[0]

    @property
    def kind(self) -> ErrorKind:
        """What the reply means; see :data:`ERROR_KINDS`.

        One refusal has no code of its own: a command a script may not run
        under the user's ACL, which Redis 7.0 answers with ``ERR The user
        executing the script can't run this command ...`` and Redis 8.0
        with ``ERR ACL failure in script: User ... has no permissions ...``.
        """
        code = self.code
        if code == "ERR" and _script_refused(self.message):
            return ErrorKind.REFUSED
        if code == "EXECABORT":
            # "EXECABORT Transaction discarded because of: NOPERM ...": EXEC
            # itself was refused, or a command failed to queue; its reason counts.
            reason = self.message.partition("because of: ")[2]
            if reason:
                return ErrorReply(reason).kind
        return ERROR_KINDS.get(code, ErrorKind.FAILED)


def _script_refused(message: str) -> bool:
    return "user executing the script can't run" in message or message.startswith(
        "ERR ACL failure in script"
    )


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


def optional_integer(value: Any) -> int | None:
    """An integer reply that may be nil."""
    return None if value is None else integer(value)


def pairs(value: Any) -> Mapping[str, Any]:
    """A RESP3 map or a RESP2 flat list of alternating names and values."""
    if isinstance(value, Mapping):
        return {text(k): v for k, v in value.items()}
    if isinstance(value, list | tuple) and len(value) % 2 == 0:
        return {text(value[i]): value[i + 1] for i in range(0, len(value), 2)}
    raise RemoteProtocolError(f"expected a map, got {type(value).__name__}")


def entry_fields(value: Any) -> tuple[tuple[bytes, bytes], ...] | None:
    """The field/value pairs of one stream entry (None: deleted while pending)."""
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
    entries: list[StreamEntry] = []
    append = entries.append
    for item in value:
        if type(item) is list and len(item) == 2:
            entry_id, fields = item
            # Hot path: the one-field entries we write ([b"id", [b"data", b"{...}"]]).
            if (
                type(entry_id) is bytes
                and type(fields) is list
                and len(fields) == 2
                and type(fields[0]) is bytes
                and type(fields[1]) is bytes
            ):
                append(StreamEntry(stream, entry_id.decode(), ((fields[0], fields[1]),)))
                continue
        elif not isinstance(item, list | tuple) or len(item) != 2:
            raise RemoteProtocolError("stream entry is not an [id, fields] pair")
        append(StreamEntry(stream, text(item[0]), entry_fields(item[1])))
    return tuple(entries)
