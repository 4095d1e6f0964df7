"""One Redis connection on anyio streams, with hiredis as the reply parser.

Every round trip of the package runs on this type, under asyncio and trio
alike: TCP, TLS (anyio's TLS over an ``ssl.SSLContext``) or a unix socket;
AUTH or HELLO 3, SELECT and CLIENT SETNAME sent once, in one round trip,
when it connects; a command, a batch of commands, or a MULTI/EXEC
transaction per round trip (one send, then the reads the replies need).

Rules it keeps:

* Error replies are values (:class:`ErrorReply`), at any depth (inside an
  EXEC reply too). A transaction Redis refused to run answers each command
  with the reason it was refused, so every command reports its own error.
* Anything else going wrong mid round trip (a socket error, a reply hiredis
  cannot parse, the deadline, cancellation) closes the connection, because
  the next reply on it could belong to the interrupted command. It
  connects afresh on its next use. Exceptions of sockets, anyio, ssl and
  hiredis become ours here (:func:`mapped`), chained with ``from``.
* Every round trip has a deadline: ``timeout``, or ``blocking_timeout``
  (above the BLOCK window) for one holding a blocking read. A silent server
  is an error, never a hang.
* A connection the server closed while it sat idle (its ``timeout``, a
  restart) is noticed before use and replaced: nothing was sent on it.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, cast

import anyio
import anyio.abc
import hiredis

from .._core.commands import ClientSetName, Command, XReadGroup
from .._core.replies import ErrorReply
from .._core.steps import Batch
from ..errors import (
    AbeRedisError,
    AccessDenied,
    ConnectError,
    LocalProtocolError,
    ServerBusy,
    TransportError,
    TransportTimeout,
)
from .address import Address

logger = logging.getLogger("abe_redis")

# A connection idle longer than this is checked for a close by the server
# before use (one non-blocking peek).
IDLE_CHECK = 1.0

# hiredis's stub types the argument as a 1-tuple; it takes any number.
_pack = cast("Callable[[tuple[Any, ...]], bytes]", hiredis.pack_command)
_MULTI = _pack(("MULTI",))
_EXEC = _pack(("EXEC",))
_ASKING = _pack(("ASKING",))


class _ReplyError(Exception):
    """What hiredis builds for an error reply; turned into an ErrorReply."""


def blocks(step: Command[Any] | Batch) -> bool:
    """Whether ``step`` holds a blocking read (alone or in a batch)."""
    if isinstance(step, Batch):
        return any(blocks(cmd) for cmd in step.commands)
    return isinstance(step, XReadGroup) and step.block_ms is not None


def _values(reply: Any) -> Any:
    """hiredis's error objects, at any depth, as ErrorReply values."""
    if isinstance(reply, _ReplyError):
        return ErrorReply(str(reply))
    if isinstance(reply, list):
        return [_values(r) for r in reply]
    return reply


def mapped(exc: BaseException, target: str) -> BaseException:
    """Our error for a socket, anyio, ssl or hiredis exception; others as they are."""
    if isinstance(exc, AbeRedisError) or not isinstance(exc, Exception):
        return exc  # ours already, or cancellation and friends
    detail = str(exc) or type(exc).__name__  # anyio's errors often carry no text
    if isinstance(exc, TimeoutError):
        return TransportTimeout(f"Redis at {target} did not answer in time")
    cause = exc.__cause__
    if isinstance(exc, ssl.SSLError) or isinstance(cause, ssl.SSLError):
        reason = exc if isinstance(exc, ssl.SSLError) else cause
        return ConnectError(f"TLS with Redis at {target} failed: {reason}")
    if isinstance(exc, OSError | anyio.BrokenResourceError | anyio.EndOfStream):
        return ConnectError(f"cannot talk to Redis at {target}: {detail}")
    if isinstance(exc, hiredis.ProtocolError):
        # Garbled bytes: the connection is closed like a lost one, and retried.
        return TransportError(f"Redis at {target} sent bytes that are not RESP: {detail}")
    return TransportError(f"Redis at {target} failed: {type(exc).__name__}: {exc}")


class Connection:
    """A lazily connected Redis connection; see the module docstring."""

    def __init__(self, address: Address, timeout: float, blocking_timeout: float) -> None:
        self.address = address
        self.target = address.target
        self._timeout = timeout
        self._blocking_timeout = blocking_timeout
        self._stream: anyio.abc.ByteStream | None = None
        self._reader: Any = None
        self._busy = False
        self._last_used = 0.0
        self.connects = 0
        self.round_trips = 0

    async def round_trip(self, step: Command[Any] | Batch, *, asking: bool = False) -> Any:
        """Run one command or batch; its raw reply (a list for a batch).

        ``asking`` sends ASKING first (a cluster's ASK redirect): the command
        may then use a slot this node is importing. Its OK is not returned.

        Raises:
            ConnectError: Redis could not be reached, refused our credentials,
                or dropped the connection.
            TransportTimeout: no complete answer within the deadline.
            TransportError: the bytes Redis sent could not be parsed.
        """
        # send() and receive() fused under one deadline: on the publish path
        # the two deadlines and calls of the split form measured 25-40 µs of
        # CPU more per round trip (a loaded 2-core VM, PING, 5,000 per run).
        if self._busy:
            raise LocalProtocolError("a connection carries one round trip at a time")
        self._busy = True
        try:
            await self._ready()
            with anyio.fail_after(self._blocking_timeout if blocks(step) else self._timeout):
                await self._send(step, asking)
                if asking:
                    await self._read()  # OK
                reply = await self._receive(step)
            self._last_used = time.monotonic()
            return reply
        except BaseException as exc:
            await self._failed(exc)
        finally:
            self._busy = False

    async def send(self, step: Command[Any] | Batch) -> None:
        """Send ``step`` and leave its reply to :meth:`receive` (a read-ahead).

        The connection stays busy until the reply is received, or until
        :meth:`abandon` closes it. Errors as :meth:`round_trip`.
        """
        if self._busy:
            raise LocalProtocolError("a connection carries one round trip at a time")
        self._busy = True
        try:
            await self._ready()
            with anyio.fail_after(self._timeout):
                await self._send(step)
        except BaseException as exc:
            self._busy = False
            await self._failed(exc)

    async def _ready(self) -> None:
        if (
            self._stream is not None
            and time.monotonic() - self._last_used > IDLE_CHECK
            and self._closed_by_peer()
        ):
            # The server dropped it while idle (its `timeout`, a restart):
            # nothing was sent on it yet, so connecting afresh is safe.
            await self._discard()
        if self._stream is None:
            await self._connect()

    async def receive(self, step: Command[Any] | Batch) -> Any:
        """The raw reply of the ``step`` last sent. Errors as :meth:`round_trip`."""
        try:
            with anyio.fail_after(self._blocking_timeout if blocks(step) else self._timeout):
                reply = await self._receive(step)
            self._last_used = time.monotonic()
            return reply
        except BaseException as exc:
            await self._failed(exc)
        finally:
            self._busy = False

    async def abandon(self) -> None:
        """Give up on a reply still due: close the connection (it would be out of step)."""
        await self._discard()
        self._busy = False

    async def _failed(self, exc: BaseException) -> NoReturn:
        await self._discard()
        error = mapped(exc, self.target)
        if error is exc:
            raise exc
        raise error from exc

    async def _send(self, step: Command[Any] | Batch, asking: bool = False) -> None:
        assert self._stream is not None
        pack = _pack
        if type(step) is not Batch:
            packed = pack(cast("Command[Any]", step).to_args())
        else:
            packed = b"".join(pack(cmd.to_args()) for cmd in step.commands)
            if step.transaction:
                packed = _MULTI + packed + _EXEC
        if asking:
            packed = _ASKING + packed
        await self._stream.send(packed)
        self.round_trips += 1

    async def _receive(self, step: Command[Any] | Batch) -> Any:
        if type(step) is not Batch:
            return await self._read()
        commands = step.commands
        if not step.transaction:
            return [await self._read() for _ in commands]
        multi, *queued = [await self._read() for _ in range(len(commands) + 1)]
        return _executed(multi, await self._read(), queued)

    async def _read(self) -> Any:
        assert self._stream is not None
        reader = self._reader
        reply = reader.gets()
        while reply is False:
            reader.feed(await self._stream.receive(65536))
            reply = reader.gets()
        if type(reply) is list:
            # Errors nest only in EXEC replies; everything else is flat or data.
            return _values(reply) if any(type(r) is _ReplyError for r in reply) else reply
        if isinstance(reply, _ReplyError):
            return ErrorReply(str(reply))
        return reply

    async def _connect(self) -> None:
        """Connect, TLS handshake and our handshake commands, within one timeout."""
        try:
            with anyio.fail_after(self._timeout):
                await self._open()
        except TimeoutError:
            raise TransportTimeout(
                f"timed out connecting to Redis at {self.target} "
                f"(no answer within {self._timeout:g} s)"
            ) from None

    async def _open(self) -> None:
        a = self.address
        try:
            if a.path is not None:
                self._stream = await anyio.connect_unix(a.path)
            elif a.tls is not None:
                self._stream = await anyio.connect_tcp(
                    a.host,
                    a.port,
                    ssl_context=a.tls,
                    tls_hostname=a.tls_hostname,
                    tls_standard_compatible=False,
                )
            else:
                self._stream = await anyio.connect_tcp(a.host, a.port)
        except OSError as exc:
            raise ConnectError(f"cannot connect to Redis at {self.target}: {exc}") from exc
        self._reader = hiredis.Reader(replyError=_ReplyError)
        self.connects += 1
        handshake = a.handshake()
        if not handshake:
            return
        await self._stream.send(b"".join(_pack(cmd.to_args()) for cmd in handshake))
        replies = [await self._read() for _ in handshake]
        for cmd, reply in zip(handshake, replies, strict=True):
            if isinstance(reply, ErrorReply):
                if isinstance(cmd, ClientSetName):
                    # A name is only for CLIENT LIST; proxies and some servers
                    # refuse CLIENT: go on unnamed.
                    logger.debug("Redis at %s refused CLIENT SETNAME: %s", self.target, reply)
                    continue
                await self._refused(cmd, reply)

    async def _refused(self, cmd: Command[Any], reply: ErrorReply) -> None:
        if reply.code == "LOADING":
            raise ServerBusy(f"Redis at {self.target} cannot run commands yet: {reply.message}")
        if cmd.name in ("AUTH", "HELLO") and reply.code != "ERR":
            raise AccessDenied(f"Redis at {self.target} refused our credentials ({reply.code})")
        raise ConnectError(f"Redis at {self.target} refused {cmd.name}: {reply.message}")

    def _closed_by_peer(self) -> bool:
        """Whether the server has closed the connection (EOF waiting), without reading."""
        assert self._stream is not None
        sock = self._stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if sock is None:
            return False
        try:
            # A duplicate of the descriptor: asyncio hands out a wrapper
            # without recv(); peeking consumes nothing either way.
            with socket.fromfd(sock.fileno(), sock.family, sock.type) as probe:
                return probe.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False  # open, nothing to read
        except OSError:
            return True

    async def _discard(self) -> None:
        stream, self._stream, self._reader = self._stream, None, None
        if stream is not None:
            await anyio.aclose_forcefully(stream)

    async def aclose(self) -> None:
        """Close the connection (a later round trip would connect again)."""
        await self._discard()


def _executed(multi: Any, reply: Any, queued: Sequence[Any]) -> list[Any]:
    """The replies of a transaction's commands, from EXEC's reply.

    When Redis refused the transaction (a command failed to queue, so EXEC
    answers EXECABORT), each command gets the reason: its own queueing
    error, or EXEC's. When it refused MULTI itself (an ACL without
    ``multi``), the commands ran one by one, outside a transaction; each
    gets MULTI's error, which names what was refused.
    """
    if isinstance(multi, ErrorReply):
        return [multi] * len(queued)
    if isinstance(reply, list):
        return reply
    error = reply if isinstance(reply, ErrorReply) else ErrorReply("EXECABORT no EXEC reply")
    return [q if isinstance(q, ErrorReply) else error for q in queued]
