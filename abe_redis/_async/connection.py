"""Redis connections on anyio streams, with hiredis as the reply parser.

Publishing and consuming run on them under both asyncio and trio: a round
trip is one send and the reads its replies need, with no redis-py pool
checkout, no worker thread (trio) and no task per command. A connection
carries one command or pipeline at a time; :class:`NativePool` lends one per
round trip, so a consumer that is dropped without closing holds none.

Rules it keeps:

* Error replies are values (:class:`ErrorReply`), as from the transport.
* Anything else going wrong mid round trip (a socket error, a reply hiredis
  cannot parse, the deadline, cancellation) closes the connection, because
  the next reply on it could belong to the interrupted command. The next
  call connects afresh.
* Every round trip has a deadline: ``Settings.socket_timeout``, or
  ``Settings.read_timeout`` (above the BLOCK window) for one holding a
  blocking read. A silent server is an error, never a hang.

TLS (``rediss://``) is not handled here: :func:`open_pool` returns None and
everything goes through the transport. ``MULTI`` pipelines always do.
``AnyOf`` (concurrent blocking reads of several streams) runs each member on
a connection of its own.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any, cast

import anyio
import anyio.abc
import hiredis

from .._core.batching import shareable
from .._core.commands import AnyOf, Command, Pipeline
from .._core.entries import ErrorReply
from ..config import Settings
from ..errors import (
    AbeRedisError,
    ConnectError,
    LocalProtocolError,
)
from .transport import Transport, blocks, map_error, run_any_of

# A connection idle longer than this is checked for a close by the server
# before use (one non-blocking peek).
IDLE_CHECK = 1.0

# hiredis's stub types the argument as a 1-tuple; it takes any number.
_pack = cast("Callable[[tuple[Any, ...]], bytes]", hiredis.pack_command)


class _ReplyError(Exception):
    """What hiredis builds for an error reply; turned into an ErrorReply."""


def open_pool(settings: Settings, transport: Transport) -> NativePool | None:
    """Native connections for ``settings``, or None where the transport must serve."""
    if settings.effective_url.startswith("rediss://"):
        return None
    return NativePool(settings, transport)


class NativePool:
    """Lends a :class:`NativeConnection` per round trip; MULTI goes to
    ``transport``. Grows to the number of round trips in flight at once (one
    per consumer and stream it blocks on, one for publishing), keeps what it
    lent for reuse."""

    def __init__(self, settings: Settings, transport: Transport) -> None:
        self._settings = settings
        self._transport = transport
        self._idle: list[NativeConnection] = []
        self._all: list[NativeConnection] = []
        self.round_trips = 0

    async def execute(self, cmd: Command[Any]) -> Any:
        """Run ``cmd`` on an idle connection (a new one if none is idle); the
        members of an AnyOf each on their own."""
        if isinstance(cmd, AnyOf):
            # A member cancelled mid-read closes its connection, so Redis
            # drops the blocked client instead of serving it later.
            return await run_any_of(cmd, self._execute_one)
        if not shareable(cmd):
            return await self._transport.execute(cmd)
        return await self._execute_one(cmd)

    async def _execute_one(self, cmd: Command[Any]) -> Any:
        conn = self._idle.pop() if self._idle else self._new()
        try:
            return await conn.execute(cmd)
        finally:
            self.round_trips += 1
            self._idle.append(conn)

    def _new(self) -> NativeConnection:
        conn = NativeConnection(self._settings)
        self._all.append(conn)
        return conn

    async def aclose(self) -> None:
        """Close every connection."""
        for conn in self._all:
            await conn.aclose()


class NativeConnection:
    """A lazily connected Redis connection; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        options = settings.url_options()
        self.target = settings.redacted_url
        self._path: str | None = options.get("path")
        self._host: str = options.get("host") or "localhost"
        self._port = int(options.get("port") or 6379)
        self._db = int(options.get("db") or 0)
        self._username: str | None = options.get("username")
        self._password: str | None = options.get("password") or settings.password
        self._protocol = int(options.get("protocol") or settings.protocol)
        self._timeout = settings.socket_timeout
        self._blocking_timeout = settings.read_timeout
        self._connect_timeout = settings.socket_timeout
        self._stream: anyio.abc.ByteStream | None = None
        self._reader: Any = None
        self._busy = False
        self._last_used = 0.0
        self.connects = 0
        self.round_trips = 0

    async def execute(self, cmd: Command[Any]) -> Any:
        """Run one command or pipeline; its raw reply (a list for a pipeline).

        Raises:
            ConnectError: Redis could not be reached, or dropped the connection.
            TransportTimeout: no complete answer within the deadline.
            TransportError: a reply could not be parsed.
        """
        if self._busy:
            raise LocalProtocolError("a native connection carries one round trip at a time")
        self._busy = True
        try:
            now = time.monotonic()
            if (
                self._stream is not None
                and now - self._last_used > IDLE_CHECK
                and self._closed_by_peer()
            ):
                # The server dropped it while idle (its `timeout`, a restart):
                # nothing was sent on it yet, so connecting afresh is safe.
                await self._discard()
            with anyio.fail_after(self._blocking_timeout if blocks(cmd) else self._timeout):
                if self._stream is None:
                    await self._connect()
                reply = await self._round_trip(cmd)
            self._last_used = time.monotonic()
            return reply
        except BaseException as exc:
            await self._discard()
            mapped = _mapped(exc, self.target)
            if mapped is exc:
                raise
            raise mapped from exc
        finally:
            self._busy = False

    async def _round_trip(self, cmd: Command[Any]) -> Any:
        pack = _pack
        if isinstance(cmd, Pipeline):
            if cmd.transaction:
                raise LocalProtocolError("MULTI pipelines go through the transport")
            packed = b"".join(pack(sub.to_args()) for sub in cmd.commands)
            count = len(cmd.commands)
        else:
            packed = pack(cmd.to_args())
            count = 1
        assert self._stream is not None
        await self._stream.send(packed)
        self.round_trips += 1
        replies = [await self._read() for _ in range(count)]
        return replies if isinstance(cmd, Pipeline) else replies[0]

    async def _read(self) -> Any:
        assert self._stream is not None
        reader = self._reader
        reply = reader.gets()
        while reply is False:
            reader.feed(await self._stream.receive(65536))
            reply = reader.gets()
        if isinstance(reply, _ReplyError):
            return ErrorReply(str(reply))
        return reply

    async def _connect(self) -> None:
        try:
            with anyio.fail_after(self._connect_timeout):
                if self._path is not None:
                    self._stream = await anyio.connect_unix(self._path)
                else:
                    self._stream = await anyio.connect_tcp(self._host, self._port)
        except (OSError, TimeoutError) as exc:
            raise ConnectError(f"cannot connect to Redis at {self.target}: {exc}") from exc
        self._reader = hiredis.Reader(replyError=_ReplyError)
        self.connects += 1
        hello: list[tuple[Any, ...]] = []
        if self._protocol == 3:
            auth: tuple[Any, ...] = ()
            if self._password is not None:
                auth = ("AUTH", self._username or "default", self._password)
            hello.append(("HELLO", 3, *auth))
        elif self._password is not None:
            hello.append(("AUTH", *((self._username,) if self._username else ()), self._password))
        if self._db:
            hello.append(("SELECT", self._db))
        for args in hello:
            await self._stream.send(_pack(args))
            reply = await self._read()
            if isinstance(reply, ErrorReply):
                if args[0] in ("AUTH", "HELLO"):
                    raise ConnectError(f"Redis at {self.target} refused our credentials")
                raise ConnectError(f"Redis at {self.target} refused {args[0]}: {reply.message}")

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
        """Close the connection (a later call would reconnect)."""
        await self._discard()


def _mapped(exc: BaseException, target: str) -> BaseException:
    if isinstance(exc, AbeRedisError) or not isinstance(exc, Exception):
        return exc  # ours already, or cancellation and friends: as they are
    return map_error(exc, target)
