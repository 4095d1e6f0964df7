"""``SyncRedisQueue``: the same backend for scripts and threads.

An anyio portal runs an asyncio loop in one background thread; every
method hands the async facade's coroutine to it and blocks until done. The
caller's thread never runs an event loop, and any number of threads may
share one queue.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, BlockingPortalProvider

from .._async.backend import RedisMessageQueueBackend
from .._async.consumer import AsyncConsumer
from .._async.transport import Transport
from .._core.entries import Delivery, GroupInfo, PendingEntry, PendingSummary
from ..config import Settings
from ..errors import BackendClosed

T = TypeVar("T")


class SyncConsumer:
    """Blocking iterator of payloads; see :class:`~abe_redis.AsyncConsumer` for acks.

    Use it in a ``with`` block (or call :meth:`close`) so what you processed
    is acknowledged and prefetched entries are released at once.
    """

    def __init__(self, portal: BlockingPortal, consumer: AsyncConsumer) -> None:
        self._portal = portal
        self._consumer = consumer

    @property
    def name(self) -> str:
        """This consumer's name in its group."""
        return self._consumer.name

    def __iter__(self) -> SyncConsumer:
        return self

    def __next__(self) -> dict[str, Any]:
        return self.next_delivery().payload

    def next_delivery(self) -> Delivery:
        """Block until the next delivery arrives.

        Raises:
            StopIteration: the consumer was closed.
            ConnectError: Redis could not be reached when consuming started.
        """
        try:
            return self._portal.call(self._consumer.next_delivery)
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self, *, processed: bool = True) -> None:
        """Stop consuming; ack what was processed (the last payload too when
        ``processed``) and release prefetched entries."""
        self._portal.call(functools.partial(self._consumer._close, processed=processed))

    def __enter__(self) -> SyncConsumer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(processed=exc_type is None)


class SyncRedisQueue:
    """Blocking Redis Streams queue with the same behaviour as the async backend.

    Args:
        settings: how to connect and consume; defaults to :class:`Settings()`.
        transport_factory: builds the transport inside the portal's loop
            (tests use it for fakeredis); default: redis.asyncio.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        transport_factory: Callable[[Settings], Transport] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self._provider = BlockingPortalProvider(backend="asyncio")
        self._portal = self._provider.__enter__()
        self._closed = False

        def make() -> RedisMessageQueueBackend:
            transport = transport_factory(self.settings) if transport_factory else None
            return RedisMessageQueueBackend(self.settings, transport=transport)

        self._backend = self._portal.call(make)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SyncRedisQueue:
        """Create a queue from ``REDIS_*`` environment variables; connects lazily."""
        return cls(Settings.from_env(environ))

    def __repr__(self) -> str:
        return f"SyncRedisQueue(url={self.settings.redacted_url!r})"

    def _call(self, func: Callable[..., Any], *args: Any) -> Any:
        if self._closed:
            raise BackendClosed("this queue was closed")
        return self._portal.call(func, *args)

    def publish(self, key: str, payload: Mapping[str, Any]) -> str:
        """Append ``payload`` to stream ``key``; return the entry id.

        Raises:
            StreamKeyError, PayloadError: bad input; nothing was written.
            TransportError: Redis could not be reached.
            BackendClosed: the queue was closed.
        """
        entry_id: str = self._call(self._backend.publish_entry, key, payload)
        return entry_id

    def consume(self, *, group: str | None = None) -> SyncConsumer:
        """Blocking iterator of payloads for ``group`` (default: the configured group)."""
        consumer: AsyncConsumer = self._call(functools.partial(self._backend.consume, group=group))
        return SyncConsumer(self._portal, consumer)

    def ping(self) -> bool:
        """Check that Redis answers. Raises ConnectError when it does not."""
        result: bool = self._call(self._backend.ping)
        return result

    def stream_length(self, key: str) -> int:
        """Number of entries in stream ``key``."""
        result: int = self._call(self._backend.stream_length, key)
        return result

    def groups(self, key: str) -> tuple[GroupInfo, ...]:
        """The consumer groups of stream ``key``."""
        result: tuple[GroupInfo, ...] = self._call(self._backend.groups, key)
        return result

    def pending(self, key: str, group: str | None = None) -> PendingSummary:
        """Summary of entries delivered to ``group`` but not acknowledged."""
        result: PendingSummary = self._call(self._backend.pending, key, group)
        return result

    def pending_entries(
        self, key: str, group: str | None = None, count: int = 100
    ) -> tuple[PendingEntry, ...]:
        """Per-entry view of pending entries: owner, idle time, delivery count."""
        result: tuple[PendingEntry, ...] = self._call(
            self._backend.pending_entries, key, group, count
        )
        return result

    def delete_stream(self, key: str) -> bool:
        """Delete stream ``key`` with its groups and entries, and unregister it (drops data)."""
        result: bool = self._call(self._backend.delete_stream, key)
        return result

    def close(self) -> None:
        """Close consumers (settling what they hold), the pool and the portal thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self._portal.call(self._backend.aclose)
        finally:
            self._provider.__exit__(None, None, None)

    def __enter__(self) -> SyncRedisQueue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
