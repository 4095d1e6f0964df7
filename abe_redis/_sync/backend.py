"""``SyncRedisQueue``: the same backend for scripts and threads.

An anyio portal runs an asyncio loop in one background thread; every
blocking method hands the async facade's own coroutine to it and waits
(:mod:`.portal`). Publishing included: publishes from many threads meet in
the async facade's coalescer and share round trips, as tasks do. The
caller's thread never runs an event loop, and any number of threads may
share one queue.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import signal
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from types import FrameType, TracebackType
from typing import Any, Generic, TypeVar

import anyio
from typing_extensions import Self

from .._async.backend import RedisMessageQueueBackend
from .._async.consumer import (
    AsyncDeliveries,
    AsyncDelivery,
    DeliveryView,
    _Consumer,
    error_text,
    thrown,
)
from .._core.consumer import ConsumerStats
from .._core.deadletters import ReplayResult
from .._core.entries import DeadLetter, Delivery, GroupInfo, PendingEntry, PendingSummary
from .._core.status import QueueStatus
from ..config import Settings
from ..errors import BackendClosed
from .portal import Portal

T = TypeVar("T")
C = TypeVar("C", bound=_Consumer)
logger = logging.getLogger("abe_redis")


class _SyncIterator(Generic[C]):
    """Blocking face of one async consumer; :meth:`stop` is thread- and signal-safe."""

    def __init__(self, portal: Portal, consumer: C) -> None:
        self._portal = portal
        self._consumer = consumer
        self._stopping = threading.Event()
        self._waiting: anyio.CancelScope | None = None

    @property
    def name(self) -> str:
        """This consumer's name in its group."""
        return self._consumer.name

    @property
    def group(self) -> str:
        """The consumer group this iterator reads for."""
        return self._consumer.group

    @property
    def stats(self) -> ConsumerStats:
        """Counters: delivered, acked, retried, reclaimed, dead-lettered, ..."""
        return self._consumer.stats

    @property
    def closed(self) -> bool:
        """Whether the consumer was closed (or ended by an error it cannot go on after)."""
        return self._consumer.closed

    def stop(self) -> None:
        """Ask the iterator to end: the next ``next()`` stops instead of reading.

        Safe to call from another thread or a signal handler. A read already
        waiting ends within the BLOCK window; what it fetched is released.
        """
        self._stopping.set()
        waiting = self._waiting
        if waiting is not None:
            # Non-blocking hand-off to the loop thread: fine in a signal handler.
            with contextlib.suppress(RuntimeError):  # the loop is already gone
                self._portal.call_soon(waiting.cancel)

    async def _batch_or_stop(self, limit: int) -> list[Delivery] | None:
        with anyio.CancelScope() as scope:
            self._waiting = scope
            if self._stopping.is_set():
                scope.cancel()
            try:
                return await self._consumer._next_batch(limit)
            finally:
                self._waiting = None
        return None  # cancelled by stop(); the interrupted read is released on close

    def _fetch(self, limit: int) -> list[Delivery]:
        """Up to ``limit`` deliveries (at least one) in one portal call."""
        if self._stopping.is_set():
            raise StopIteration
        try:
            batch = self._portal.call(self._batch_or_stop, limit)
        except StopAsyncIteration:
            raise StopIteration from None
        if batch is None or self._stopping.is_set():
            # Stopped while waiting: hand nothing new out; close releases it.
            raise StopIteration
        return batch


class SyncConsumer(_SyncIterator[AsyncDeliveries]):
    """Blocking iterator of payloads; see :class:`~abe_redis.AsyncConsumer` for acks.

    Asking for the next payload marks the previous one processed, as in the
    async facade. It also behaves like a generator: ``send(None)`` is
    ``next()``, ``throw(exc)`` reports that the payload just handed out
    failed (retried after a backoff, or dead-lettered with the error after
    ``max_deliveries``) and returns the next payload, and :meth:`close`
    closes it. Deliveries already fetched come over from the portal thread
    in one hop, so iterating costs no thread hop per message; use a consumer
    from one thread at a time. Use it in a ``with`` block (or call
    :meth:`close`) so what you processed is acknowledged and everything else
    is released at once.
    """

    def __init__(self, portal: Portal, consumer: AsyncDeliveries) -> None:
        super().__init__(portal, consumer)
        self._fetched: collections.deque[Delivery] = collections.deque()
        self._last: Delivery | None = None

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> dict[str, Any]:
        return self.next_delivery().payload

    def next_delivery(self) -> Delivery:
        """Block until the next delivery arrives.

        Raises:
            StopIteration: the consumer was stopped or closed.
            ConnectError: Redis could not be reached when consuming started.
        """
        core = self._consumer._core
        if self._last is not None:
            # Only this thread touches this consumer's core between portal
            # calls, so the ack needs no hop; it goes out with the next read.
            core.ack(self._last.key, time.monotonic())
            self._last = None
        if self._stopping.is_set():
            raise StopIteration
        if not self._fetched:
            self._fetched.extend(self._fetch(self._consumer._core.config.prefetch))
        self._last = self._consumer._handed(self._fetched.popleft())
        return self._last

    def send(self, value: None) -> dict[str, Any]:
        """The next payload, as ``next()`` (the value sent is ignored)."""
        return self.__next__()

    def throw(self, typ: Any, val: Any = None, tb: TracebackType | None = None) -> dict[str, Any]:
        """Report that the payload in hand failed with this exception; the next payload.

        See :meth:`AsyncConsumer.athrow <abe_redis.AsyncConsumer.athrow>`.

        Raises:
            the exception itself: nothing is in hand, or it is not an
                ``Exception`` (the consumer is then closed without
                acknowledging the payload in hand).
        """
        exc = thrown(typ, val)
        if not isinstance(exc, Exception):
            self.close(processed=False)
            raise exc
        last = self._last
        if last is None or self._consumer.closed:
            raise exc
        self._last = None
        text = error_text(exc)
        logger.warning("handler failed on %s of %s: %s", last.id, last.stream, text)
        if self._consumer._telemetry is not None:
            self._consumer._telemetry.end(self._consumer, last.key, type(exc).__name__)
        self._consumer._core.nack(last.key, time.monotonic(), error=text)
        return self.__next__()

    def close(self, *, processed: bool | None = None) -> None:
        """Stop consuming; ack what was processed (the last payload too, unless
        ``processed`` is False) and release the rest."""
        if self._last is not None and processed is not False and not self._consumer.closed:
            self._consumer._core.ack(self._last.key, time.monotonic())
            if self._consumer._telemetry is not None:
                self._consumer._telemetry.end(self._consumer, self._last.key)
        self._last = None
        self._fetched.clear()
        # Everything handed over but not acked here is released, not drained.
        self._portal.call(functools.partial(self._consumer._close, processed=False))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(processed=exc_type is None)


class SyncDelivery(DeliveryView):
    """One delivery to settle with :meth:`ack` or :meth:`nack` (blocking)."""

    __slots__ = ("_inner", "_portal")

    def __init__(self, portal: Portal, inner: AsyncDelivery) -> None:
        self._portal = portal
        self._inner = inner

    @property
    def delivery(self) -> Delivery:
        """The delivery record (payload, stream, id, count)."""
        return self._inner.delivery

    def ack(self) -> None:
        """Mark it processed (see :meth:`AsyncDelivery.ack`)."""
        self._portal.call(self._inner.ack)

    def nack(
        self, *, delay: float | None = None, error: BaseException | str | None = None
    ) -> float | None:
        """Mark it failed: retry after a backoff, or dead-letter it (see
        :meth:`AsyncDelivery.nack`)."""
        result: float | None = self._portal.call(
            functools.partial(self._inner.nack, delay=delay, error=error)
        )
        return result


class SyncDeliveries(_SyncIterator[AsyncDeliveries]):
    """Blocking iterator of :class:`SyncDelivery`; see :class:`~abe_redis.AsyncDeliveries`."""

    def __iter__(self) -> Self:
        return self

    @property
    def unsettled(self) -> int:
        """How many handed-out deliveries are neither acked nor nacked."""
        return self._consumer.unsettled

    def __next__(self) -> SyncDelivery:
        # One at a time: these may be handed to other threads, and each
        # settlement goes through the portal anyway.
        (delivery,) = self._fetch(1)
        return SyncDelivery(self._portal, AsyncDelivery(self._consumer, delivery))

    def close(self, drain_timeout: float | None = None) -> None:
        """Wait up to ``drain_timeout`` for unsettled deliveries, then settle and release."""
        self._portal.call(self._consumer.aclose, drain_timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncRedisQueue:
    """Blocking Redis Streams queue with the same behaviour as the async backend.

    Args:
        settings: how to connect and consume; defaults to :class:`Settings()`.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self._portal = Portal()
        self._closed = False
        self._consumers: weakref.WeakSet[SyncConsumer] = weakref.WeakSet()
        self._backend = self._portal.run_sync(RedisMessageQueueBackend, self.settings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SyncRedisQueue:
        """Create a queue from ``REDIS_*`` environment variables; connects lazily.

        Raises:
            ConfigError: a variable is invalid; the message names it.
        """
        return cls(Settings.from_env(environ))

    def __repr__(self) -> str:
        return f"SyncRedisQueue(url={self.settings.redacted_url!r})"

    def _await(self, func: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
        """Run a coroutine function of the backend in the portal and wait for it."""
        if self._closed:
            raise BackendClosed("this queue was closed")
        if kwargs:
            return self._portal.call(functools.partial(func, *args, **kwargs))
        return self._portal.call(func, *args)

    def _call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a plain function of the backend in the portal's thread."""
        if self._closed:
            raise BackendClosed("this queue was closed")
        return self._portal.run_sync(functools.partial(func, *args, **kwargs))

    def publish(self, key: str, payload: dict[str, Any]) -> None:
        """Append ``payload`` to the stream ``key`` (see :meth:`publish_entry`)."""
        self._await(self._backend.publish, key, payload)

    def publish_entry(
        self, key: str, payload: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> str:
        """Append ``payload`` to stream ``key``; return the entry id.

        See :meth:`RedisMessageQueueBackend.publish_entry` for idempotency
        keys and errors.
        """
        if idempotency_key is None:
            return self._await(self._backend.publish_entry, key, payload)
        return self._await(
            self._backend.publish_entry, key, payload, idempotency_key=idempotency_key
        )

    def publish_many(self, key: str, payloads: Sequence[Mapping[str, Any]]) -> list[str]:
        """Append many payloads to stream ``key`` in pipelined chunks; return their ids."""
        return self._await(self._backend.publish_many, key, payloads)

    def consume(self, *, group: str | None = None) -> SyncConsumer:
        """Blocking iterator of payloads for ``group`` (default: the configured group)."""
        consumer = SyncConsumer(self._portal, self._call(self._backend.deliveries, group=group))
        self._consumers.add(consumer)
        return consumer

    def deliveries(self, *, group: str | None = None) -> SyncDeliveries:
        """Blocking iterator of deliveries to settle with ``ack``/``nack``."""
        return SyncDeliveries(self._portal, self._call(self._backend.deliveries, group=group))

    def run(
        self,
        handler: Callable[[dict[str, Any]], object],
        *,
        group: str | None = None,
        stop_signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
        drain_timeout: float | None = None,
    ) -> int:
        """Call ``handler`` with each payload until stopped; returns how many were handled.

        A handler that returns acks its payload; one that raises nacks it
        with the error (retried after a backoff, dead-lettered after
        ``max_deliveries``). On one of ``stop_signals`` (installed when
        called from the main thread) the handler in progress finishes, its
        result is settled, nothing new is read, and everything else held is
        released for other consumers.
        """
        deliveries = self.deliveries(group=group)
        previous: dict[signal.Signals, Any] = {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            deliveries.stop()

        if threading.current_thread() is threading.main_thread():
            for sig in stop_signals:
                previous[sig] = signal.signal(sig, on_signal)
        handled = 0
        try:
            for delivery in deliveries:
                try:
                    handler(delivery.payload)
                except Exception as exc:
                    logger.warning(
                        "handler failed on %s of %s (delivery %d): %s: %s",
                        delivery.id,
                        delivery.stream,
                        delivery.deliveries,
                        type(exc).__name__,
                        exc,
                    )
                    delivery.nack(error=exc)
                else:
                    delivery.ack()
                handled += 1
        finally:
            deliveries.close(drain_timeout)
            for sig, old in previous.items():
                signal.signal(sig, old)
        return handled

    def ping(self) -> bool:
        """Check that Redis answers. Raises ConnectError when it does not."""
        return self._await(self._backend.ping)

    def stream_length(self, key: str) -> int:
        """Number of entries in stream ``key``."""
        return self._await(self._backend.stream_length, key)

    def groups(self, key: str) -> tuple[GroupInfo, ...]:
        """The consumer groups of stream ``key``."""
        return self._await(self._backend.groups, key)

    def pending(self, key: str, group: str | None = None) -> PendingSummary:
        """Summary of entries delivered to ``group`` but not acknowledged."""
        return self._await(self._backend.pending, key, group)

    def pending_entries(
        self, key: str, group: str | None = None, count: int = 100
    ) -> tuple[PendingEntry, ...]:
        """Per-entry view of pending entries: owner, idle time, delivery count."""
        return self._await(self._backend.pending_entries, key, group, count)

    def trim(self, key: str) -> int:
        """Trim stream ``key`` now, as far as every group allows."""
        return self._await(self._backend.trim, key)

    def dead_letters(self, key: str, count: int = 100, after: str = "-") -> tuple[DeadLetter, ...]:
        """Dead letters of stream ``key``, oldest first."""
        return self._await(self._backend.dead_letters, key, count, after)

    def dead_letter_count(self, key: str) -> int:
        """How many dead letters stream ``key`` has."""
        return self._await(self._backend.dead_letter_count, key)

    def replay_dead_letters(self, key: str, ids: Sequence[str] | None = None) -> ReplayResult:
        """Re-publish dead letters (all, or ``ids``) to ``key``; each moves atomically."""
        return self._await(self._backend.replay_dead_letters, key, ids)

    def purge_dead_letters(self, key: str, ids: Sequence[str] | None = None) -> int:
        """Delete dead letters (all, or ``ids``); returns how many went."""
        return self._await(self._backend.purge_dead_letters, key, ids)

    def streams(self) -> tuple[str, ...]:
        """The streams consumers read: ``REDIS_STREAMS``, or the registry's, sorted."""
        return self._await(self._backend.streams)

    def status(self, streams: Sequence[str] | None = None) -> QueueStatus:
        """Length, lag, pending, consumers and dead letters of each stream and group."""
        return self._await(self._backend.status, streams)

    def remove_idle_consumers(
        self, key: str, idle_ms: int, group: str | None = None, *, dry_run: bool = False
    ) -> tuple[str, ...]:
        """Delete the consumers idle at least ``idle_ms`` that hold nothing; their names."""
        return self._await(
            self._backend.remove_idle_consumers, key, idle_ms, group, dry_run=dry_run
        )

    def delete_stream(self, key: str) -> bool:
        """Delete stream ``key`` with its groups and entries, and unregister it (drops data)."""
        return self._await(self._backend.delete_stream, key)

    def close(self) -> None:
        """Close consumers (settling what they hold), the pool and the portal thread."""
        if self._closed:
            return
        self._closed = True
        try:
            # Consumers nobody closed: release what they hold (no drain wait).
            for consumer in list(self._consumers):
                consumer.close(processed=False)
            self._portal.call(self._backend.aclose)
        finally:
            self._portal.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
