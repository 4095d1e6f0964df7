"""Consumer-group reading as a sans-IO state machine.

Rules this module keeps:

* At least once. An entry is acknowledged only after it was processed: in
  ``auto_ack`` mode (the host protocol) when the application asks for the
  next one or closes the consumer saying it finished; otherwise when the
  application settles it with :meth:`ConsumerCore.ack`. Acks are batched
  and ride with the next read.
* Counts come from Redis. An entry read with ``>`` is on its first
  delivery; for entries re-read, reclaimed or retried, XPENDING says how
  often Redis delivered them. An entry delivered more than
  ``max_deliveries`` times, or failed by a handler on its last allowed
  delivery, or that cannot be decoded, is moved to ``<stream>:dlq`` with
  the reason and acknowledged in the same MULTI.
* Nothing stuck. On start, after a transport error, and after a cancelled
  read, the consumer re-reads its own pending entries (id ``0``) before new
  ones. Entries of dead consumers are taken over with XAUTOCLAIM once idle
  for ``claim_min_idle_ms``. On close, everything still pending for this
  consumer and not processed is released (XCLAIM ... IDLE) for others.
* One key per command, so that a cluster transport can route each.
* No clock: ``now`` arrives with every :class:`~abe_redis._core.steps.Resume`.

States and their allowed transitions are in :data:`TRANSITIONS`.
"""

from __future__ import annotations

import enum
import heapq
import logging
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import CommandError, GroupMissingError, LocalProtocolError, TransportError
from .codec import (
    FIELD,
    Loads,
    Undecodable,
    decode_entry,
    encode_payload,
    is_internal,
    stdlib_loads,
)
from .commands import (
    NOT_RUN,
    AnyOf,
    Command,
    GroupMissing,
    Pipeline,
    SMembers,
    XAck,
    XAdd,
    XAutoClaim,
    XClaimEntries,
    XClaimIds,
    XGroupCreate,
    XPendingRange,
    XReadGroup,
)
from .entries import ClaimPage, Delivery, StreamEntry
from .policy import Backoff, GroupPolicy, RedeliveryPolicy, fails_at_start
from .scripts import DELETE_STALE_CONSUMERS, call
from .steps import Flow, Interrupted, Sleep

logger = logging.getLogger("abe_redis")

DLQ_SUFFIX = ":dlq"
MAX_ERROR_CHARS = 1000
Key = tuple[str, str]


class ConsumerState(enum.Enum):
    """Life cycle of one consumer."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


TRANSITIONS: dict[ConsumerState, frozenset[ConsumerState]] = {
    ConsumerState.NEW: frozenset({ConsumerState.STARTING, ConsumerState.CLOSED}),
    ConsumerState.STARTING: frozenset({ConsumerState.RUNNING, ConsumerState.CLOSING}),
    ConsumerState.RUNNING: frozenset({ConsumerState.CLOSING}),
    ConsumerState.CLOSING: frozenset({ConsumerState.CLOSED}),
    ConsumerState.CLOSED: frozenset(),
}


def dead_letter_stream(stream: str) -> str:
    """Where entries of ``stream`` go when they cannot be processed."""
    return stream + DLQ_SUFFIX


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """What one consumer reads and how; durations in ms or seconds as named."""

    group: str
    consumer: str
    registry_key: str
    streams: tuple[str, ...] | None = None
    prefetch: int = 64
    block_ms: int = 1000
    claim_min_idle_ms: int = 30_000
    claim_interval: float = 5.0
    discovery_interval: float = 2.0
    ack_interval: float = 0.2
    auto_ack: bool = True
    redelivery: RedeliveryPolicy = field(default_factory=RedeliveryPolicy)
    on_missing_group: GroupPolicy = GroupPolicy.RECREATE_FROM_START
    stale_consumer_ms: int | None = 3_600_000
    stale_check_interval: float = 60.0
    loads: Loads = stdlib_loads


@dataclass(slots=True)
class ConsumerStats:
    """Counters of what one consumer did; read them for metrics."""

    delivered: int = 0
    acked: int = 0
    retried: int = 0
    reclaimed: int = 0
    dead_lettered: int = 0
    released: int = 0
    groups_recreated: int = 0
    stale_consumers_removed: int = 0


@dataclass(slots=True)
class _Stream:
    history: bool = True
    history_from: str = "0"
    claim_from: str = "0-0"


@dataclass(frozen=True, slots=True)
class _Dead:
    stream: str
    id: str
    fields: tuple[tuple[bytes, bytes], ...]
    reason: str
    deliveries: int
    error: str | None


@dataclass(slots=True)
class ConsumerCore:
    """State of one consumer; :meth:`run` and :meth:`close` are its flows.

    :meth:`ack` and :meth:`nack` settle deliveries handed out by :meth:`run`
    (explicit mode); they change state only, and the flow sends what they
    decided with its next round trip.
    """

    config: ConsumerConfig
    backoff: Backoff = field(default_factory=Backoff)
    rng: random.Random = field(default_factory=random.Random)
    state: ConsumerState = ConsumerState.NEW
    stats: ConsumerStats = field(default_factory=ConsumerStats)
    streams: dict[str, _Stream] = field(default_factory=dict)
    buffer: deque[Delivery] = field(default_factory=deque)
    outstanding: dict[Key, Delivery] = field(default_factory=dict)
    acks: dict[str, list[str]] = field(default_factory=dict)
    retries: list[tuple[float, str, str]] = field(default_factory=list)
    dead: list[_Dead] = field(default_factory=list)
    held: set[Key] = field(default_factory=set)
    held_version: int = 0
    errors: dict[Key, str] = field(default_factory=dict)
    now: float = 0.0
    first_ack_at: float | None = None
    handed: Key | None = None
    ack_count: int = 0
    _drained: bool = False
    next_claim_at: float = 0.0
    next_discovery_at: float = 0.0
    next_stale_check_at: float = 0.0

    # -- state ------------------------------------------------------------

    def _to(self, new: ConsumerState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise LocalProtocolError(f"consumer cannot go from {self.state.value} to {new.value}")
        self.state = new

    def _hold(self, key: Key) -> None:
        self.held.add(key)
        self.held_version += 1

    def _unhold(self, key: Key) -> None:
        self.held.discard(key)
        self.held_version += 1

    def leases(self) -> dict[str, tuple[str, ...]]:
        """Every id this consumer holds (prefetched, handed out, awaiting ack or retry)."""
        out: dict[str, list[str]] = {}
        for stream, entry_id in self.held:
            out.setdefault(stream, []).append(entry_id)
        return {stream: tuple(ids) for stream, ids in out.items()}

    # -- settlement -------------------------------------------------------

    def _take(self, key: Key) -> Delivery:
        delivery = self.outstanding.pop(key, None)
        if delivery is None:
            raise LocalProtocolError(
                f"entry {key[1]} of {key[0]} is not an unsettled delivery of this consumer "
                "(settled already, or never delivered)"
            )
        return delivery

    def ack(self, key: Key, now: float) -> None:
        """Mark a delivery processed; its XACK goes with the next round trip.

        Raises:
            LocalProtocolError: it was settled already or never delivered.
        """
        delivery = self._take(key)
        if self.first_ack_at is None:
            self.first_ack_at = now
        self.acks.setdefault(delivery.stream, []).append(delivery.id)
        self.ack_count += 1
        if self.errors:
            self.errors.pop(key, None)

    def nack(
        self, key: Key, now: float, *, delay: float | None = None, error: str | None = None
    ) -> float | None:
        """Mark a delivery failed: retry it after ``delay`` or dead-letter it.

        Without ``delay`` the wait grows with the delivery count (see
        :class:`RedeliveryPolicy`). On its last allowed delivery the entry is
        dead-lettered instead. Returns the delay, or None when dead-lettered.

        Raises:
            LocalProtocolError: it was settled already or never delivered.
        """
        delivery = self._take(key)
        if error is not None:
            self.errors[key] = error[:MAX_ERROR_CHARS]
        policy = self.config.redelivery
        if delivery.deliveries >= policy.max_deliveries:
            self.dead.append(
                _Dead(
                    delivery.stream,
                    delivery.id,
                    encode_payload(delivery.payload),
                    f"failed on delivery {delivery.deliveries} of {policy.max_deliveries}",
                    delivery.deliveries,
                    self.errors.pop(key, None),
                )
            )
            return None
        wait = (
            policy.retry_delay(delivery.deliveries, self.rng) if delay is None else max(0.0, delay)
        )
        heapq.heappush(self.retries, (now + wait, delivery.stream, delivery.id))
        self.stats.retried += 1
        return wait

    # -- flows --------------------------------------------------------------

    def run(self) -> Flow[None]:
        """The endless consuming flow: yields commands, sleeps and deliveries."""
        self._to(ConsumerState.STARTING)
        # The first round trip doubles as the start-up check: a transport
        # error here propagates instead of entering the retry loop.
        yield from self._discover()
        self._to(ConsumerState.RUNNING)
        while True:
            if self.dead:
                yield from self._bury()
            if self.buffer:
                resume = yield self._hand_out()
                self.now = resume.now
                self._settle_handed(resume.now)
                # With the buffer empty the acks ride with the refill's read.
                if self.buffer and self._ack_due():
                    yield from self._call(Pipeline(tuple(self._ack_commands())))
                    self._acked()
            else:
                yield from self._refill()

    def hand_out_buffered(self, now: float) -> Delivery | None:
        """The next delivery without resuming :meth:`run`, or None if the flow must run.

        Call only while :meth:`run` is suspended at the delivery it yielded
        last. It does what the flow would do without a round trip: settles
        the delivery in the application's hands (``auto_ack``) and hands out
        the next buffered one. None when the buffer is empty, dead letters
        wait, or acks are due: then resume the flow, which finds the same
        state (settling is idempotent).
        """
        if self.state is not ConsumerState.RUNNING:
            return None
        self.now = now
        self._settle_handed(now)
        if not self.buffer or self.dead or self._ack_due():
            return None
        return self._hand_out()

    def _hand_out(self) -> Delivery:
        delivery = self.buffer.popleft()
        key = (delivery.stream, delivery.id)
        self.outstanding[key] = delivery
        self.stats.delivered += 1
        if self.config.auto_ack:
            self.handed = key
        return delivery

    def _settle_handed(self, now: float) -> None:
        # auto_ack: asking for the next delivery means the last one was processed.
        key = self.handed
        if key is not None:
            self.handed = None
            if key in self.outstanding:
                self.ack(key, now)

    def close(self, *, processed: bool) -> Flow[None]:
        """Flow that settles what this consumer holds before it goes away.

        Acknowledges what was processed (and, in ``auto_ack`` mode, the
        delivery in the application's hands when ``processed``); moves
        pending dead letters; then releases everything else still pending
        for this consumer, including entries a cancelled read may have
        fetched, so another consumer can claim them at once. One attempt
        only: after a transport error the entries stay pending and are
        reclaimed after the idle threshold.
        """
        if self.state is ConsumerState.NEW:
            self._to(ConsumerState.CLOSED)
            return
        if self.state is ConsumerState.CLOSED:
            return
        self._to(ConsumerState.CLOSING)
        if self.config.auto_ack and processed:
            for key in list(self.outstanding):
                self.ack(key, self.now)
        cfg = self.config
        try:
            if self.dead:
                yield from self._bury(retry=False)
            acks = self._ack_commands()
            mine = [
                XPendingRange(name, cfg.group, count=10_000, consumer=cfg.consumer)
                for name in self.streams
            ]
            if acks or mine:
                pipe = Pipeline((*acks, *mine))
                resume = yield pipe
                replies = pipe.parse_reply(resume.reply)
                self._acked()
                release = [
                    XClaimIds(cmd.stream, cfg.group, cfg.consumer, ids, cfg.claim_min_idle_ms)
                    for cmd, rows in zip(mine, replies[len(acks) :], strict=True)
                    if (ids := tuple(row.id for row in rows))
                ]
                if release:
                    pipe = Pipeline(tuple(release))
                    resume = yield pipe
                    released = pipe.parse_reply(resume.reply)
                    self.stats.released += sum(len(ids) for ids in released)
        except (TransportError, CommandError) as exc:
            # One attempt only: what is left stays pending and is reclaimed
            # by other consumers after the idle threshold.
            logger.warning("could not settle entries on close (%s); they stay pending", exc)
        finally:
            self.buffer.clear()
            self.outstanding.clear()
            self.retries.clear()
            self.held.clear()
            self.held_version += 1
            self.state = ConsumerState.CLOSED

    # -- steps ----------------------------------------------------------

    def _call(self, cmd: Command[Any]) -> Flow[Any]:
        while True:
            try:
                resume = yield cmd
                self.now = resume.now
                # Inside the try: a reply saying the server cannot run
                # commands yet (ServerBusy, such as LOADING) is retried too.
                value = cmd.parse_reply(resume.reply)
            except Interrupted:
                # Cancelled mid-command: send it again, but first treat any
                # entries it may have delivered as ours to re-read.
                self._reread_pending()
                continue
            except TransportError as exc:
                if self.state is ConsumerState.STARTING and fails_at_start(exc):
                    raise
                # The lost reply may have delivered entries to us.
                self._reread_pending()
                resume = yield Sleep(self.backoff.failure(exc, self.now))
                self.now = resume.now
                continue
            self.backoff.success(self.now)
            return value

    def _best_effort(self, flow: Flow[Any]) -> Flow[Any]:
        """Run housekeeping; on a transport error or cancellation skip it this time."""
        try:
            return (yield from flow)
        except Interrupted:
            return None
        except TransportError as exc:
            resume = yield Sleep(self.backoff.failure(exc, self.now))
            self.now = resume.now
            return None

    def _reread_pending(self) -> None:
        for stream in self.streams.values():
            stream.history, stream.history_from = True, "0"

    def _discover(self) -> Flow[None]:
        if self.config.streams is not None:
            wanted: Iterable[str] = self.config.streams
        else:
            members = yield from self._call(SMembers(self.config.registry_key))
            wanted = sorted(m for m in members if not is_internal(m))
        new = [s for s in wanted if s not in self.streams]
        if new:
            yield from self._call(
                Pipeline(tuple(XGroupCreate(s, self.config.group, "0") for s in new))
            )
            for name in new:
                self.streams[name] = _Stream()
        self.next_discovery_at = self.now + self.config.discovery_interval

    def _refill(self) -> Flow[None]:
        cfg = self.config
        if cfg.streams is None and self.now >= self.next_discovery_at:
            yield from self._discover()
        if cfg.stale_consumer_ms is not None and self.now >= self.next_stale_check_at:
            yield from self._remove_stale_consumers()
        if not self.streams:
            # Nothing published yet: wait for the registry to name a stream.
            resume = yield Sleep(min(0.5, cfg.discovery_interval))
            self.now = resume.now
            return
        if len(self.outstanding) >= cfg.prefetch:
            # Explicit mode with a full hand: wait for settlements.
            if self.acks:
                yield from self._call(Pipeline(tuple(self._ack_commands())))
                self._acked()
            resume = yield Sleep(0.01)
            self.now = resume.now
            return
        if self._drained and len(self.streams) == 1 and self.now < self.next_claim_at:
            # The last read found the stream empty and nothing else is due:
            # go straight to the blocking read, with the acks in front of it
            # in the same round trip (one round trip per message at low rates).
            ((name, state),) = self.streams.items()
            if not state.history and not (self.retries and self.retries[0][0] <= self.now):
                yield from self._block(name, state)
                return
        acks = self._ack_commands()
        reads = [self._read(name, state) for name, state in self.streams.items()]
        claims: list[XAutoClaim] = []
        if self.now >= self.next_claim_at:
            claims = [
                XAutoClaim(
                    name,
                    cfg.group,
                    cfg.consumer,
                    cfg.claim_min_idle_ms,
                    state.claim_from,
                    cfg.prefetch,
                )
                for name, state in self.streams.items()
            ]
            self.next_claim_at = self.now + cfg.claim_interval
        retries = self._due_retries()
        # Order matters: acks first (so history reads skip them), then reads,
        # then claims (so a history read cannot return what we just claimed).
        replies = yield from self._call(Pipeline((*acks, *reads, *claims, *retries)))
        self._acked()
        replies = replies[len(acks) :]
        recounted: list[StreamEntry] = []
        for read, reply in zip(reads, replies[: len(reads)], strict=True):
            entries = yield from self._take_read(read, reply)
            if read.start_id == ">":
                self._drained = len(entries) < read.count
                self._accept(entries)
            else:
                recounted.extend(entries)
        replies = replies[len(reads) :]
        for claim, page in zip(claims, replies[: len(claims)], strict=True):
            recounted.extend((yield from self._take_claim(claim, page)))
        for retry, reply in zip(retries, replies[len(claims) :], strict=True):
            if isinstance(reply, GroupMissing):
                yield from self._group_missing(retry.stream)
            else:
                recounted.extend(reply)
        if recounted:
            counts = yield from self._counts(recounted)
            self._accept(recounted, counts)
        if self.buffer or self.dead or any(s.history for s in self.streams.values()):
            return
        if len(self.streams) == 1:
            ((name, state),) = self.streams.items()
            yield from self._block(name, state)
            return
        blocking = [self._read(name, state, block=True) for name, state in self.streams.items()]
        answers = yield from self._call(AnyOf(tuple(blocking)))
        for read, reply in zip(blocking, answers, strict=True):
            if reply is NOT_RUN:
                # Cancelled mid-flight: Redis may have served it anyway.
                self.streams[read.stream].history = True
            else:
                self._accept((yield from self._take_read(read, reply)))

    def _block(self, name: str, state: _Stream) -> Flow[None]:
        """One stream: pending acks, then a blocking read, in one round trip."""
        read = self._read(name, state, block=True)
        acks = self._ack_commands()
        replies = yield from self._call(Pipeline((*acks, read)))
        self._acked()
        entries = yield from self._take_read(read, replies[-1])
        self._drained = len(entries) < read.count
        self._accept(entries)

    def _read(self, name: str, state: _Stream, *, block: bool = False) -> XReadGroup:
        cfg = self.config
        block_ms = None
        if block:
            block_ms = cfg.block_ms
            if self.retries:
                # Do not block past the next retry.
                wait_ms = max(1, int((self.retries[0][0] - self.now) * 1000))
                block_ms = min(block_ms, wait_ms)
        return XReadGroup(
            cfg.group,
            cfg.consumer,
            name,
            state.history_from if state.history else ">",
            cfg.prefetch,
            block_ms,
        )

    def _due_retries(self) -> list[XClaimEntries]:
        due: dict[str, list[str]] = {}
        while self.retries and self.retries[0][0] <= self.now:
            _, stream, entry_id = heapq.heappop(self.retries)
            self._unhold((stream, entry_id))  # held again when it comes back
            due.setdefault(stream, []).append(entry_id)
        cfg = self.config
        return [XClaimEntries(s, cfg.group, cfg.consumer, tuple(ids)) for s, ids in due.items()]

    def _take_read(self, read: XReadGroup, reply: Any) -> Flow[tuple[StreamEntry, ...]]:
        if isinstance(reply, GroupMissing):
            yield from self._group_missing(read.stream)
            return ()
        entries: tuple[StreamEntry, ...] = reply
        state = self.streams[read.stream]
        if read.start_id != ">":
            if len(entries) < read.count:
                state.history, state.history_from = False, "0"
            else:
                state.history_from = entries[-1].id
        return entries

    def _take_claim(
        self, claim: XAutoClaim, reply: ClaimPage | GroupMissing
    ) -> Flow[tuple[StreamEntry, ...]]:
        if isinstance(reply, GroupMissing):
            yield from self._group_missing(claim.stream)
            return ()
        self.streams[claim.stream].claim_from = reply.next_start
        if reply.entries:
            self.stats.reclaimed += len(reply.entries)
            logger.info(
                "reclaimed %d idle entries of %s from other consumers",
                len(reply.entries),
                claim.stream,
            )
        return reply.entries

    def _counts(self, entries: list[StreamEntry]) -> Flow[dict[Key, int]]:
        """Delivery counts of re-read, reclaimed or retried entries, from XPENDING."""
        by_stream: dict[str, list[str]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry.id)
        cfg = self.config
        queries = tuple(
            XPendingRange(
                stream,
                cfg.group,
                min(ids, key=_id_order),
                max(ids, key=_id_order),
                len(self.held) + len(ids) + 16,
                cfg.consumer,
            )
            for stream, ids in by_stream.items()
        )
        rows = yield from self._call(Pipeline(queries))
        return {
            (q.stream, row.id): row.deliveries
            for q, page in zip(queries, rows, strict=True)
            for row in page
        }

    def _accept(self, entries: Iterable[StreamEntry], counts: dict[Key, int] | None = None) -> None:
        limit = self.config.redelivery.max_deliveries
        held, buffer = self.held, self.buffer
        for entry in entries:
            key = (entry.stream, entry.id)
            if key in held:
                continue
            held.add(key)
            deliveries = 1 if counts is None else counts.get(key, 1)
            if entry.fields is None:
                # Deleted while pending: nothing is left to keep.
                self.acks.setdefault(entry.stream, []).append(entry.id)
                self.ack_count += 1
                self.first_ack_at = self.first_ack_at or self.now
            elif deliveries > limit:
                reason = f"delivered {deliveries} times, more than max_deliveries={limit}"
                error = self.errors.pop(key, None)
                self.dead.append(
                    _Dead(entry.stream, entry.id, entry.fields, reason, deliveries, error)
                )
            else:
                decoded = decode_entry(entry, deliveries, self.config.loads)
                if isinstance(decoded, Undecodable):
                    self.dead.append(
                        _Dead(
                            entry.stream, entry.id, entry.fields, decoded.reason, deliveries, None
                        )
                    )
                else:
                    buffer.append(decoded)
        self.held_version += 1

    def _bury(self, *, retry: bool = True) -> Flow[None]:
        """Move dead letters to their dead-letter streams, acked in the same MULTI."""
        by_stream: dict[str, list[_Dead]] = {}
        for dead in self.dead:
            by_stream.setdefault(dead.stream, []).append(dead)
        for stream, deads in by_stream.items():
            commands: list[Command[Any]] = [
                XAdd(dead_letter_stream(stream), self._record(d)) for d in deads
            ]
            commands.append(XAck(stream, self.config.group, tuple(d.id for d in deads)))
            pipe = Pipeline(tuple(commands), transaction=True)
            if retry:
                yield from self._call(pipe)
            else:
                resume = yield pipe
                pipe.parse_reply(resume.reply)
            for d in deads:
                logger.warning(
                    "entry %s of %s dead-lettered to %s: %s",
                    d.id,
                    stream,
                    dead_letter_stream(stream),
                    d.reason,
                )
                self._unhold((stream, d.id))
                self.errors.pop((stream, d.id), None)
            self.stats.dead_lettered += len(deads)
        self.dead.clear()

    def _record(self, dead: _Dead) -> tuple[tuple[bytes, bytes], ...]:
        record = [
            (b"reason", dead.reason.encode()),
            (b"source_stream", dead.stream.encode()),
            (b"source_id", dead.id.encode()),
            (b"group", self.config.group.encode()),
            (b"consumer", self.config.consumer.encode()),
            (b"deliveries", str(dead.deliveries).encode()),
        ]
        if dead.error is not None:
            record.append((b"error", dead.error.encode("utf-8", "replace")))
        for name, value in dead.fields:
            # Our own payload stays under `data` so it can be replayed as is.
            record.append((name if name == FIELD else b"field:" + name, value))
        return tuple(record)

    def _group_missing(self, stream: str) -> Flow[None]:
        policy = self.config.on_missing_group
        if policy is GroupPolicy.FAIL:
            raise GroupMissingError(
                f"consumer group {self.config.group!r} of stream {stream!r} vanished"
            )
        logger.warning(
            "consumer group %s of stream %s vanished; recreating it from %s",
            self.config.group,
            stream,
            "the start of the stream" if policy is GroupPolicy.RECREATE_FROM_START else "its end",
        )
        yield from self._call(XGroupCreate(stream, self.config.group, policy.value))
        self.streams[stream] = _Stream()
        self.stats.groups_recreated += 1

    def _remove_stale_consumers(self) -> Flow[None]:
        cfg = self.config
        self.next_stale_check_at = self.now + cfg.stale_check_interval
        for stream in list(self.streams):
            gone = yield from self._best_effort(
                call(
                    DELETE_STALE_CONSUMERS,
                    (stream,),
                    (cfg.group, cfg.consumer, cfg.stale_consumer_ms or 0),
                )
            )
            if gone:
                self.stats.stale_consumers_removed += len(gone)
                logger.info(
                    "removed %d stale consumers of group %s on %s (idle, nothing pending)",
                    len(gone),
                    cfg.group,
                    stream,
                )

    # -- acks -------------------------------------------------------------

    def _ack_due(self) -> bool:
        if self.first_ack_at is None:
            return False
        return (
            self.ack_count >= self.config.prefetch
            or self.now - self.first_ack_at >= self.config.ack_interval
        )

    def _ack_commands(self) -> list[Command[Any]]:
        return [
            XAck(stream, self.config.group, tuple(ids)) for stream, ids in self.acks.items() if ids
        ]

    def _acked(self) -> None:
        for stream, ids in self.acks.items():
            self.stats.acked += len(ids)
            for entry_id in ids:
                self._unhold((stream, entry_id))
        self.acks.clear()
        self.ack_count = 0
        self.first_ack_at = None


def _id_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return (int(ms), int(seq or 0))
