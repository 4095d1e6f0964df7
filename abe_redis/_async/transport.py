"""Runs core commands on Redis; the only module that talks to redis-py.

I/O path per event loop:

* asyncio: ``redis.asyncio`` with a blocking connection pool.
* trio: redis.asyncio cannot run there, so the blocking client runs in
  worker threads through ``anyio.to_thread.run_sync`` (pool shared across
  threads). A blocking read cancelled mid-flight has its connection closed,
  so Redis cannot serve it afterwards; the core re-reads its own pending
  entries in case Redis served it before.

Most traffic bypasses this module: see :mod:`.connection` for the native
connections both loops use for plain ``redis://`` and ``unix://`` URLs.

Replies reach the core raw: response callbacks are removed, bytes are not
decoded, and error replies become :class:`ErrorReply` values. Every other
redis-py exception is mapped to our hierarchy and chained.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
import redis
import redis.asyncio
from redis import exceptions as rex

from .._core.commands import NOT_RUN, AnyOf, Command, Pipeline, XReadGroup
from .._core.entries import ErrorReply
from ..config import Settings
from ..errors import AbeRedisError, ConnectError, ServerBusy, TransportError, TransportTimeout

logger = logging.getLogger("abe_redis")


class Transport(Protocol):
    """What drivers need: run one command, close; ``target`` is safe to show.

    ``execute_blocking`` runs a command from a plain thread (the lease keeper,
    and the sync facade's publishing).
    """

    target: str

    async def execute(self, cmd: Command[Any]) -> Any: ...

    def execute_blocking(self, cmd: Command[Any]) -> Any: ...

    async def aclose(self) -> None: ...


# Redis unreachable or the connection dropped, as redis-py, sockets and anyio say it.
_CONNECTION_LOST = (rex.ConnectionError, OSError, anyio.BrokenResourceError, anyio.EndOfStream)


def map_error(exc: Exception, target: str) -> AbeRedisError:
    """Our error for a redis-py, socket or anyio stream exception; the caller chains it."""
    if isinstance(exc, rex.AuthenticationError | rex.AuthenticationWrongNumberOfArgsError):
        return ConnectError(f"Redis at {target} refused our credentials: {exc}")
    detail = str(exc) or type(exc).__name__  # anyio's errors often carry no text
    if isinstance(exc, rex.BusyLoadingError):  # a ConnectionError to redis-py
        return ServerBusy(f"Redis at {target} cannot run commands yet: LOADING {detail}")
    if isinstance(exc, rex.TimeoutError | TimeoutError):
        return TransportTimeout(f"Redis at {target} did not answer in time: {detail}")
    if isinstance(
        exc, rex.ConnectionError | OSError | anyio.BrokenResourceError | anyio.EndOfStream
    ):
        return ConnectError(f"cannot talk to Redis at {target}: {detail}")
    return TransportError(f"Redis at {target} failed: {type(exc).__name__}: {exc}")


# redis-py strips these codes from the message and encodes them in the class;
# put them back so the core sees what Redis said.
_CODES: tuple[tuple[type[Exception], str], ...] = (
    (rex.NoScriptError, "NOSCRIPT"),
    (rex.ReadOnlyError, "READONLY"),
    (rex.ExecAbortError, "EXECABORT"),
    (rex.NoPermissionError, "NOPERM"),
    (rex.TryAgainError, "TRYAGAIN"),
    (rex.MasterDownError, "MASTERDOWN"),  # before its base class
    (rex.ClusterDownError, "CLUSTERDOWN"),
)


def error_reply(exc: rex.ResponseError) -> ErrorReply:
    """The error reply Redis sent, as a value for the core."""
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return ErrorReply(f"{code} {exc}")
    return ErrorReply(str(exc))


def _reply_value(exc: rex.ResponseError) -> ErrorReply:
    # The exception's traceback holds the frames that called us (and so our
    # consumers) in a cycle; drop it so they are freed at once.
    exc.__traceback__ = None
    return error_reply(exc)


def _replies(raw: list[Any]) -> list[Any]:
    return [_reply_value(r) if isinstance(r, rex.ResponseError) else r for r in raw]


def _pool_options(settings: Settings) -> dict[str, Any]:
    return {
        "max_connections": settings.max_connections,
        "timeout": max(20.0, settings.read_timeout),
        "socket_timeout": settings.read_timeout,
        "socket_connect_timeout": settings.socket_timeout,
        "password": settings.password,
        "protocol": settings.protocol,
        "decode_responses": False,
    }


class _Base:
    """Shared by both transports: AnyOf, and a blocking path for threads."""

    target: str
    _blocking_client: Any

    async def execute(self, cmd: Command[Any]) -> Any:
        if isinstance(cmd, AnyOf):
            return await run_any_of(cmd, self._execute)
        return await self._execute(cmd)

    async def _execute(self, cmd: Command[Any]) -> Any:
        raise NotImplementedError

    def execute_blocking(self, cmd: Command[Any]) -> Any:
        """Run one command (or pipeline) with the blocking client, from any thread."""
        try:
            if isinstance(cmd, Pipeline):
                pipe = self._blocking_client.pipeline(transaction=cmd.transaction)
                for sub in cmd.commands:
                    pipe.execute_command(*sub.to_args())
                return _replies(pipe.execute(raise_on_error=False))
            return self._blocking_client.execute_command(*cmd.to_args())
        except rex.ResponseError as exc:
            return error_reply(exc)
        except (rex.RedisError, OSError) as exc:
            raise map_error(exc, self.target) from exc


async def run_any_of(cmd: AnyOf, execute: Callable[[Command[Any]], Awaitable[Any]]) -> list[Any]:
    """Run every member of ``cmd`` at once with ``execute``; stop the rest when
    one brings something or fails.

    ``execute`` must make a cancelled blocking read unservable (close its
    connection): a read Redis still holds after we stopped waiting would hand
    entries to a reply nobody reads, and they would sit pending until the
    claim threshold. The core re-reads its pending entries of the cancelled
    members (:data:`NOT_RUN`), which covers reads served before the close.
    """
    replies: list[Any] = [NOT_RUN] * len(cmd.commands)
    failure: list[BaseException] = []
    async with anyio.create_task_group() as tg:

        async def member(i: int, sub: Command[Any]) -> None:
            try:
                replies[i] = await execute(sub)
            except AbeRedisError as exc:
                failure.append(exc)
                tg.cancel_scope.cancel()
                return
            if replies[i]:  # nil or empty means the BLOCK window passed
                tg.cancel_scope.cancel()

        for i, sub in enumerate(cmd.commands):
            tg.start_soon(member, i, sub)
    if failure:
        raise failure[0]
    return replies


def _blocking_client(settings: Settings, max_connections: int | None = None) -> Any:
    options = _pool_options(settings)
    if max_connections is not None:
        options["max_connections"] = max_connections
    pool = redis.BlockingConnectionPool.from_url(settings.effective_url, **options)
    client = redis.Redis.from_pool(pool)
    client.response_callbacks.clear()
    return client


class AsyncioTransport(_Base):
    """redis.asyncio on the running asyncio loop (plus a small blocking pool for threads)."""

    def __init__(self, settings: Settings, client: Any = None, blocking_client: Any = None) -> None:
        self.target = settings.redacted_url
        self._settings = settings
        if client is None:
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                settings.effective_url, **_pool_options(settings)
            )
            client = redis.asyncio.Redis.from_pool(pool)  # owns and closes the pool
        client.response_callbacks.clear()
        self._client = client
        self._given_blocking = blocking_client
        self._blocking: Any = None
        self._blocking_lock = threading.Lock()

    @property
    def _blocking_client(self) -> Any:
        # Made on first use, by the lease thread or the sync facade's
        # publishing (one flush at a time): a few connections are plenty.
        # Threads may race here, hence the lock.
        with self._blocking_lock:
            if self._blocking is None:
                if self._given_blocking is not None:
                    self._given_blocking.response_callbacks.clear()
                    self._blocking = self._given_blocking
                else:
                    self._blocking = _blocking_client(self._settings, max_connections=4)
            return self._blocking

    async def _execute(self, cmd: Command[Any]) -> Any:
        try:
            if isinstance(cmd, Pipeline):
                pipe = self._client.pipeline(transaction=cmd.transaction)
                for sub in cmd.commands:
                    pipe.execute_command(*sub.to_args())
                return _replies(await pipe.execute(raise_on_error=False))
            return await self._client.execute_command(*cmd.to_args())
        except rex.ResponseError as exc:
            return error_reply(exc)
        except (rex.RedisError, OSError) as exc:
            raise map_error(exc, self.target) from exc

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._blocking is not None:
            await anyio.to_thread.run_sync(self._blocking.close)


class ThreadTransport(_Base):
    """The blocking client in worker threads; serves trio (and any loop)."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.target = settings.redacted_url
        if client is None:
            client = _blocking_client(settings)
        client.response_callbacks.clear()
        self._blocking_client = client

    async def _execute(self, cmd: Command[Any]) -> Any:
        if not blocks(cmd):
            return await anyio.to_thread.run_sync(self.execute_blocking, cmd)
        read = _BlockingRead(self._blocking_client.connection_pool, cmd, self.target)
        try:
            return await anyio.to_thread.run_sync(read.run, abandon_on_cancel=True)
        except BaseException:
            read.call_off()
            raise

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self._blocking_client.close)


class _BlockingRead:
    """A blocking read (alone or ending a pipeline) in a worker thread, which
    the event loop can call off.

    Abandoning the thread is not enough: Redis would still serve the read
    within its BLOCK window and hand entries to a reply nobody reads. So the
    read runs on a connection of its own, and :meth:`call_off` disconnects
    it (only while the thread still has it): Redis then drops the blocked
    client. The thread fails at once and returns the connection to the pool.
    """

    def __init__(self, pool: Any, cmd: Command[Any], target: str) -> None:
        self._pool = pool
        self._cmd = cmd
        self._target = target
        self._lock = threading.Lock()
        self._conn: Any = None
        self._called_off = False

    def run(self) -> Any:
        commands = self._cmd.commands if isinstance(self._cmd, Pipeline) else (self._cmd,)
        try:
            conn = _checkout(self._pool)
        except (rex.RedisError, OSError) as exc:
            raise map_error(exc, self._target) from exc
        with self._lock:
            if self._called_off:
                self._pool.release(conn)
                raise ConnectError("blocking read called off before it was sent")
            self._conn = conn
        try:
            conn.send_packed_command(conn.pack_commands([c.to_args() for c in commands]))
            replies = [_read_reply(conn) for _ in commands]
        except (rex.RedisError, OSError) as exc:
            conn.disconnect()  # replies still due on it would be out of step
            raise map_error(exc, self._target) from exc
        finally:
            with self._lock:
                self._conn = None
            self._pool.release(conn)
        return replies if isinstance(self._cmd, Pipeline) else replies[0]

    def call_off(self) -> None:
        """Disconnect the read's connection if it is still in use (from any thread)."""
        with self._lock:
            self._called_off = True
            if self._conn is not None:
                try:
                    self._conn.disconnect()
                except Exception as exc:  # it must not mask the cancellation
                    # fakeredis's in-process sockets refuse this from another
                    # thread. Were Redis to serve the read after all, its
                    # entries would be reclaimed after the claim threshold.
                    logger.debug("could not disconnect a called-off read: %r", exc)


def _checkout(pool: Any) -> Any:
    try:
        return pool.get_connection()
    except TypeError:  # redis-py before 5.3 wants a command name
        return pool.get_connection("XREADGROUP")


def _read_reply(conn: Any) -> Any:
    try:
        return conn.read_response()
    except rex.ResponseError as exc:
        return _reply_value(exc)


def blocks(cmd: Command[Any]) -> bool:
    """Whether ``cmd`` holds a blocking read (alone or at the end of a pipeline)."""
    if isinstance(cmd, Pipeline):
        return any(blocks(sub) for sub in cmd.commands)
    return isinstance(cmd, XReadGroup) and cmd.block_ms is not None


def running_on_asyncio() -> bool:
    """True inside a running asyncio loop (trio has none)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def open_transport(settings: Settings) -> Transport:
    """The transport that suits the event loop we are called from."""
    if running_on_asyncio():
        return AsyncioTransport(settings)
    return ThreadTransport(settings)


def fakeredis_transport(settings: Settings, server: Any = None) -> Transport:
    """A transport on fakeredis (in process), for tests and the demo's fallback.

    fakeredis differs from Redis on streams in places; behaviour we promise
    is tested against a real redis-server.
    """
    import fakeredis

    server = server if server is not None else fakeredis.FakeServer()
    transport: AsyncioTransport | ThreadTransport
    if running_on_asyncio():
        transport = AsyncioTransport(
            settings,
            client=fakeredis.FakeAsyncRedis(server=server),
            blocking_client=fakeredis.FakeRedis(server=server),
        )
    else:
        transport = ThreadTransport(settings, client=fakeredis.FakeRedis(server=server))
    transport.target = "fakeredis (in process)"
    return transport
