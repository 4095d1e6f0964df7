"""``RedisMessageQueueBackend``: the host protocol on anyio (asyncio and trio)."""

from __future__ import annotations

import dataclasses
import itertools
import os
import socket
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import anyio
from typing_extensions import Self

from .._core.commands import (
    Command,
    Delete,
    Ping,
    SMembers,
    SRem,
    XLen,
    XPendingRange,
    XPendingSummary,
)
from .._core.consumer import ConsumerConfig, ConsumerCore
from .._core.deadletters import (
    ReplayResult,
    count_dead_letters,
    list_dead_letters,
    purge_dead_letters,
    replay_dead_letters,
)
from .._core.entries import DeadLetter, GroupInfo, PendingEntry, PendingSummary
from .._core.keys import is_internal, validate_key
from .._core.policy import RedeliveryPolicy
from .._core.publisher import Item, Publisher
from .._core.replies import text
from .._core.retry import Backoff, Outage
from .._core.scripts import DELETE_STALE_CONSUMERS, call
from .._core.status import QueueStatus, queue_status
from .._core.steps import Batch, Flow, once, run_batch
from .._core.trimming import group_infos, safe_trim
from .._io.coalescer import Coalescer
from .._io.driver import run_flow
from .._io.executor import Executor, Wire
from .._io.topology import open_topology, topology_kind
from ..config import Settings
from ..errors import BackendClosed, OutOfMemory, TransportError, ValidationError
from ..fastjson import loads_for
from ..telemetry import Telemetry, telemetry_for
from .consumer import AsyncConsumer, AsyncDeliveries, _Consumer
from .leases import LeaseKeeper

T = TypeVar("T")
_consumer_numbers = itertools.count(1)
_names_taken: dict[str, int] = {}
_names_lock = threading.Lock()  # consumers are made from many threads (sync facade)


def default_consumer_name() -> str:
    """``host-pid-n``: stable for this process, unique among its consumers."""
    with _names_lock:
        n = next(_consumer_numbers)
    return f"{socket.gethostname()}-{os.getpid()}-{n}"


def configured_consumer_name(name: str) -> str:
    """``name`` for the process's first consumer, ``name-2``, ``name-3``... after.

    Two consumers sharing a name would share their pending entries, and each
    could re-read what the other is still handling.
    """
    with _names_lock:
        taken = _names_taken.get(name, 0) + 1
        _names_taken[name] = taken
    return name if taken == 1 else f"{name}-{taken}"


class RedisMessageQueueBackend:
    """Redis Streams message-queue backend for ``abstract-backend`` hosts.

    Publishing appends to the stream named by the key; consuming reads
    every registered stream through a consumer group, at least once. Works
    unchanged under asyncio and trio, on the package's own connections
    (anyio streams and hiredis). Use it as an async context manager, or
    call :meth:`aclose` when done. Connections open on first use, in the
    event loop of that use; a backend serves one event loop.

    Args:
        settings: how to connect and consume; defaults to :class:`Settings()`.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = s = settings if settings is not None else Settings()
        self._wire: Wire | None = None
        # One outage, one log line: the publisher and every consumer of this
        # backend share what the log says (they reach the same Redis); each
        # keeps its own retry delays.
        self._outage = Outage()
        self._publisher = Publisher(
            registry_key=s.registry_key,
            maxlen=s.stream_maxlen,
            consumed=s.streams or (),
            idempotency_field=s.idempotency_field,
            idempotency_window_ms=s.idempotency_window_ms,
            max_payload_bytes=s.max_payload_bytes,
            retry_budget=s.publish_retry_seconds,
            ungrouped_maxlen=s.ungrouped_maxlen,
            wait_replicas=s.publish_wait_replicas,
            wait_ms=s.publish_wait_ms,
            backoff=Backoff(outage=self._outage),
        )
        self._consumers: weakref.WeakSet[_Consumer] = weakref.WeakSet()
        self._leases: LeaseKeeper | None = None
        self._coalescer: Coalescer | None = None
        self._closed = False
        self._gauge_queue: Any = None
        self._telemetry = telemetry_for(s.otel, self._blocking_status)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RedisMessageQueueBackend:
        """Create a backend from ``REDIS_*`` environment variables; connects lazily.

        Raises:
            ConfigError: a variable is invalid; the message names it.
        """
        return cls(Settings.from_env(environ))

    def __repr__(self) -> str:
        return f"RedisMessageQueueBackend(url={self.settings.redacted_url!r})"

    # -- plumbing ---------------------------------------------------------

    def _open(self) -> Wire:
        """The wire every round trip of this backend goes through (made on first use)."""
        if self._closed:
            raise BackendClosed("this backend was closed")
        if self._wire is None:
            self._wire = Wire(open_topology(self.settings))
        return self._wire

    def _pipelined(self) -> Coalescer:
        if self._coalescer is None:
            self._coalescer = Coalescer(self._open())
        elif self._closed:
            raise BackendClosed("this backend was closed")
        return self._coalescer

    async def _flow(self, flow: Flow[T]) -> T:
        return await run_flow(flow, self._open())

    async def _run(self, cmd: Command[T]) -> T:
        return await self._flow(once(cmd))

    # -- host protocol ------------------------------------------------------

    async def publish(self, key: str, payload: dict[str, Any]) -> None:
        """Append ``payload`` to the stream ``key`` (see :meth:`publish_entry`)."""
        await self.publish_entry(key, payload)

    async def publish_entry(
        self, key: str, payload: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> str:
        """Append ``payload`` to the stream ``key`` and return the new entry id.

        Concurrent publishes share round trips: whatever queues up while a
        pipeline is in flight goes out in the next one, on one connection.
        With ``idempotency_key`` (or the payload field named by
        ``Settings.idempotency_field``), a publish repeating a key seen within
        ``idempotency_window_ms`` writes nothing and returns the first id.

        Raises:
            StreamKeyError: bad ``key`` (nothing written).
            PayloadError: ``payload`` is not a JSON object, too deep or too
                large (nothing written).
            ValidationError: bad idempotency key (nothing written).
            TransportError: Redis could not be reached within the retry
                budget (``publish_retry_seconds`` from the call's start);
                without an idempotency key the entry may or may not have
                been written.
            OutOfMemory: Redis is at ``maxmemory`` and trimming what every
                group had finished did not make room (nothing written).
            AccessDenied: the ACL refuses the write (nothing written).
            BackendClosed: the backend was closed.
        """
        publisher = self._publisher
        stream, item = publisher.checked(key, payload, idempotency_key)
        if self._telemetry is not None:
            return await self._telemetry.publish(
                stream, 1, lambda extra: self._write(stream, (item[0] + extra, item[1]))
            )
        return await self._write(stream, item)

    async def _write(self, stream: str, item: Item) -> str:
        coalescer = self._pipelined()
        publisher, now = self._publisher, time.monotonic()
        fast = publisher.fast_xadd(stream, item, now)
        if fast is not None:
            try:
                entry_id = fast.parse_reply(await coalescer.execute(fast))
            except (TransportError, OutOfMemory):
                pass  # the flow below retries it (trims first) within the budget
            else:
                if publisher.fast_written(stream, entry_id):
                    assert entry_id is not None
                    return entry_id
        return await run_flow(publisher.write(stream, item, now), coalescer)

    async def publish_many(self, key: str, payloads: Sequence[Mapping[str, Any]]) -> list[str]:
        """Append many payloads to stream ``key`` in pipelined chunks; return their ids.

        Every payload is validated before anything is written, so one bad
        payload raises and writes nothing. Errors as :meth:`publish_entry`.
        """
        coalescer = self._pipelined()
        if self._telemetry is not None:
            return await self._telemetry.publish(
                str(key),
                len(payloads),
                lambda extra: run_flow(
                    self._publisher.publish_many(key, payloads, time.monotonic(), extra),
                    coalescer,
                ),
            )
        return await run_flow(
            self._publisher.publish_many(key, payloads, time.monotonic()), coalescer
        )

    def consume(self, *, group: str | None = None) -> AsyncConsumer:
        """Consume payloads as a consumer of ``group`` (default: the configured group).

        Every consumer group gets every event once; within a group each event
        goes to one consumer. A new group starts at the beginning of each
        stream, so events published before any worker ran are delivered.
        See :class:`AsyncConsumer` for when entries are acknowledged.

        Raises:
            BackendClosed: the backend was closed.
        """
        consumer = AsyncConsumer(*self._consumer_parts(group, auto_ack=True))
        self._consumers.add(consumer)
        return consumer

    def deliveries(self, *, group: str | None = None) -> AsyncDeliveries:
        """Like :meth:`consume`, but yields deliveries you settle with ``ack``/``nack``.

        A nacked delivery comes back after a backoff; one that fails on its
        ``max_deliveries``-th delivery goes to the dead-letter stream with
        the error. See :class:`AsyncDeliveries`.

        Raises:
            BackendClosed: the backend was closed.
        """
        consumer = AsyncDeliveries(*self._consumer_parts(group, auto_ack=False))
        self._consumers.add(consumer)
        return consumer

    def _consumer_parts(
        self, group: str | None, *, auto_ack: bool
    ) -> tuple[ConsumerCore, Executor, LeaseKeeper, float, Telemetry | None]:
        wire = self._open()
        s = self.settings
        config = ConsumerConfig(
            group=group if group is not None else s.consumer_group,
            consumer=(
                configured_consumer_name(s.consumer_name)
                if s.consumer_name
                else default_consumer_name()
            ),
            registry_key=s.registry_key,
            streams=s.streams,
            prefetch=s.prefetch,
            read_ahead=s.read_ahead,
            max_payload_bytes=s.max_payload_bytes,
            block_ms=s.block_ms,
            claim_min_idle_ms=s.claim_min_idle_ms,
            claim_interval=max(0.05, min(5.0, s.claim_min_idle_ms / 1000 / 4)),
            auto_ack=auto_ack,
            redelivery=RedeliveryPolicy(s.max_deliveries, s.retry_base, s.retry_cap),
            on_missing_group=s.on_missing_group,
            stale_consumer_ms=s.stale_consumer_ms,
            loads=loads_for(s.json),
        )
        if self._leases is None:
            # Its own loop, so its own connections: two are plenty.
            self._leases = LeaseKeeper(
                lambda: Wire(open_topology(s, limit=2)),
                interval=s.claim_min_idle_ms / 1000 / 3,
                max_lease=s.max_lease_ms / 1000,
            )
        core = ConsumerCore(config, Backoff(outage=self._outage))
        return core, wire, self._leases, s.drain_timeout, self._telemetry

    def _blocking_status(self) -> QueueStatus:
        """The status, read blocking on a queue of its own (the gauges' thread)."""
        if self._gauge_queue is None:
            from .._sync.backend import SyncRedisQueue

            self._gauge_queue = SyncRedisQueue(dataclasses.replace(self.settings, otel=False))
        found: QueueStatus = self._gauge_queue.status()
        return found

    # -- inspection -----------------------------------------------------

    async def ping(self) -> bool:
        """Check that Redis answers. Raises ConnectError when it does not."""
        return await self._run(Ping())

    async def stream_length(self, key: str) -> int:
        """Number of entries in stream ``key`` (0 when it does not exist)."""
        return await self._run(XLen(key))

    async def groups(self, key: str) -> tuple[GroupInfo, ...]:
        """The consumer groups of stream ``key``."""
        return await self._flow(group_infos(key))

    async def pending(self, key: str, group: str | None = None) -> PendingSummary:
        """Summary of entries of ``key`` delivered to ``group`` but not acknowledged."""
        return await self._run(XPendingSummary(key, group or self.settings.consumer_group))

    async def pending_entries(
        self, key: str, group: str | None = None, count: int = 100
    ) -> tuple[PendingEntry, ...]:
        """Per-entry view of the pending entries: owner, idle time, delivery count."""
        return await self._run(
            XPendingRange(key, group or self.settings.consumer_group, count=count)
        )

    async def trim(self, key: str) -> int:
        """Trim stream ``key`` now, as far as every group allows; returns entries removed."""
        return await self._flow(safe_trim(key, self.settings.ungrouped_maxlen))

    async def delete_stream(self, key: str) -> bool:
        """Delete stream ``key`` with its groups and unconsumed entries, and unregister it.

        Returns whether the stream existed. This drops data: meant for
        tests, demos and clean-ups.
        """
        key = validate_key(key, reserved=self.settings.registry_key)
        self._publisher.registered.pop(key, None)
        removed, _ = await self._flow(
            run_batch(Batch((Delete(key), SRem(self.settings.registry_key, key))))
        )
        return bool(removed)

    async def streams(self) -> tuple[str, ...]:
        """The streams consumers read: ``REDIS_STREAMS``, or the registry's
        (without the probe streams such as ``_health_check``), sorted."""
        if self.settings.streams is not None:
            return tuple(self.settings.streams)
        members = await self._run(SMembers(self.settings.registry_key))
        return tuple(sorted(m for m in members if not is_internal(m)))

    async def status(self, streams: Sequence[str] | None = None) -> QueueStatus:
        """Length, lag, pending, consumers and dead letters of each stream and group.

        ``streams`` defaults to :meth:`streams`. Three round trips however
        many streams (see :mod:`abe_redis._core.status` for the bounds);
        cheap enough to call every few seconds.
        """
        names = await self.streams() if streams is None else tuple(streams)
        for name in names:
            validate_key(name, reserved=self.settings.registry_key)
        found = await self._flow(queue_status(names))
        # Known once the first round trip is done (a cluster is told at connect).
        server = dataclasses.replace(found.server, topology=topology_kind(self._open().topology))
        return dataclasses.replace(found, server=server)

    async def remove_idle_consumers(
        self, key: str, idle_ms: int, group: str | None = None, *, dry_run: bool = False
    ) -> tuple[str, ...]:
        """Delete the consumers of ``group`` on ``key`` idle at least ``idle_ms``
        that hold nothing pending; returns their names (``dry_run``: only names them).

        A consumer holding pending entries is never deleted (that would
        drop them). The check and the delete are one script on the server.
        """
        group = group or self.settings.consumer_group
        if idle_ms < 1:
            raise ValidationError(f"idle_ms must be at least 1, got {idle_ms}")
        mode = "dry-run" if dry_run else "delete"
        gone = await self._flow(call(DELETE_STALE_CONSUMERS, (key,), (group, "", idle_ms, mode)))
        return tuple(text(name) for name in gone or ())

    # -- dead letters ------------------------------------------------------

    async def dead_letters(
        self, key: str, count: int = 100, after: str = "-"
    ) -> tuple[DeadLetter, ...]:
        """Dead letters of stream ``key`` (kept in ``abe_redis:dlq:{<tag>}:<key>``), oldest first.

        To page on, pass ``after="(" + last.id``.
        """
        return await self._flow(list_dead_letters(key, count, after))

    async def dead_letter_count(self, key: str) -> int:
        """How many dead letters stream ``key`` has."""
        return await self._flow(count_dead_letters(key))

    async def replay_dead_letters(self, key: str, ids: Sequence[str] | None = None) -> ReplayResult:
        """Re-publish dead letters (all, or ``ids``) to ``key``; each moves atomically.

        A replayed entry is a new entry: every group of the stream receives
        it again. Records of foreign entries (not written by us) stay.
        """
        return await self._flow(replay_dead_letters(key, None if ids is None else tuple(ids)))

    async def purge_dead_letters(self, key: str, ids: Sequence[str] | None = None) -> int:
        """Delete dead letters (all, or ``ids``); returns how many went."""
        return await self._flow(purge_dead_letters(key, None if ids is None else tuple(ids)))

    # -- life cycle -----------------------------------------------------

    async def aclose(self) -> None:
        """Close the consumers still open, the lease thread and the pool.

        A consumer still open here was not closed by its owner, so nothing
        says its last payload was processed (its task may have been
        cancelled mid-handler): what it holds is released, not acked, and
        acks it had batched are sent.
        """
        if self._closed:
            return
        try:
            for consumer in list(self._consumers):
                if isinstance(consumer, AsyncDeliveries):
                    await consumer.aclose()
                else:
                    await consumer._close(processed=False)
        finally:
            # Even when the closing task is cancelled (a host's task group
            # shutting down): the lease thread stops and no socket is left open.
            self._consumers.clear()
            self._closed = True
            if self._leases is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._leases.stop)
            if self._wire is not None:
                await self._wire.aclose()
            if self._gauge_queue is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._gauge_queue.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
