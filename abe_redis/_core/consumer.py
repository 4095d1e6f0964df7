"""One consumer of a group, as a sans-IO state machine.

Rules it keeps (the parts live in their own modules):

* At least once. An entry is acknowledged only after it was processed: in
  ``auto_ack`` mode (the host protocol) when the application asks for the
  next one or closes the consumer saying it finished; otherwise when the
  application settles it with :meth:`ConsumerCore.ack`. Acks are batched
  and ride with the next read (:mod:`.settling`).
* What to read next, re-reading our own pending entries first whenever a
  reply may have been lost, and reclaiming dead consumers' entries
  (:mod:`.reading`).
* Counts come from Redis; entries delivered too often or undecodable are
  dead-lettered with their XACK in one MULTI (:mod:`.counting`,
  :mod:`.deadletters`).
* Streams are discovered from the registry and vanished groups recovered by
  policy (:mod:`.groups`); stale consumers are removed (:mod:`.cleanup`).
* On close, everything still pending for this consumer and not processed
  is released (XCLAIM ... IDLE) for others to claim at once.
* Read-ahead: while a backlog is being handed out from one stream, the next
  read (with the acks owed) is sent when half the buffer is left, so Redis
  answers it while the application works; its reply is collected when the
  buffer runs dry. Only while handlers are fast: the buffered entries must
  take less than a third of the lease interval at the pace seen, because
  entries of a read in flight are not yet renewed. Never while a claim,
  discovery, clean-up or retry is due: those go through a regular refill.
* Round trips are retried by :func:`~.retry.retrying`; the core never reads
  the clock: ``now`` arrives with every :class:`~abe_redis._core.steps.Resume`.

States and their allowed transitions are in :data:`TRANSITIONS`.
"""

from __future__ import annotations

import enum
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import (
    CommandError,
    LocalProtocolError,
    OutOfMemory,
    RemoteProtocolError,
    TransportError,
)
from .cleanup import remove_stale_consumers
from .codec import MAX_PAYLOAD_BYTES, Loads, decode_entry, encode_payload, stdlib_loads
from .commands import (
    GroupMissing,
    Unblocked,
    XAutoClaim,
    XClaimIds,
    XPendingRange,
    XReadGroup,
)
from .counting import admit, count_queries, counts
from .deadletters import MAX_ERROR_CHARS, DeadEntry, burials, dead_letter_stream
from .entries import ClaimPage, Delivery, StreamEntry
from .groups import discover, recover
from .policy import GroupPolicy, RedeliveryPolicy
from .reading import ReadPlan
from .retry import Backoff, fails_at_start, retrying
from .settling import Key, Ledger
from .steps import (
    NOT_RUN,
    Ahead,
    Batch,
    Collect,
    Flow,
    Interrupted,
    Lost,
    Race,
    RoundTrip,
    Sleep,
)

logger = logging.getLogger("abe_redis")
T = TypeVar("T")


class ConsumerState(enum.Enum):
    """Life cycle of one consumer."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


TRANSITIONS: dict[ConsumerState, frozenset[ConsumerState]] = {
    # A start that failed (Redis unreachable) goes back to NEW: a retry starts over.
    ConsumerState.NEW: frozenset({ConsumerState.STARTING, ConsumerState.CLOSED}),
    ConsumerState.STARTING: frozenset(
        {ConsumerState.RUNNING, ConsumerState.NEW, ConsumerState.CLOSING}
    ),
    ConsumerState.RUNNING: frozenset({ConsumerState.CLOSING}),
    ConsumerState.CLOSING: frozenset({ConsumerState.CLOSED}),
    ConsumerState.CLOSED: frozenset(),
}


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
    read_ahead: bool = True
    max_payload_bytes: int = MAX_PAYLOAD_BYTES


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
    read_ahead: int = 0
    unblocked: int = 0
    """Blocking reads the server ended (stream or group deleted, role change)."""
    lost_with_group: int = 0
    """Entries received before their group vanished, whose acks could not land."""


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
    ledger: Ledger = field(init=False)
    plan: ReadPlan = field(init=False)
    buffer: deque[Delivery] = field(default_factory=deque)
    dead: list[DeadEntry] = field(default_factory=list)
    now: float = 0.0
    next_discovery_at: float = 0.0
    next_stale_check_at: float = 0.0
    ahead: tuple[Any, Batch, XReadGroup, dict[str, list[str]]] | None = None
    batch_started: float | None = None  # when the first entry of this buffer was handed out
    batch_handed: int = 0
    next_burial_at: float = 0.0  # dead letters wait until then (Redis out of memory)

    def __post_init__(self) -> None:
        cfg = self.config
        self.ledger = Ledger(cfg.group)
        self.plan = ReadPlan(
            cfg.group,
            cfg.consumer,
            cfg.prefetch,
            cfg.block_ms,
            cfg.claim_min_idle_ms,
            cfg.claim_interval,
        )

    # -- state ------------------------------------------------------------

    def _to(self, new: ConsumerState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise LocalProtocolError(f"consumer cannot go from {self.state.value} to {new.value}")
        self.state = new

    @property
    def streams(self) -> tuple[str, ...]:
        """The streams this consumer reads."""
        return tuple(self.plan.cursors)

    @property
    def held_version(self) -> int:
        """Changes whenever the set of held entries does."""
        return self.ledger.version

    def leases(self) -> dict[str, tuple[str, ...]]:
        """Every id this consumer holds (prefetched, handed out, awaiting ack or retry)."""
        return self.ledger.leases()

    # -- settlement -------------------------------------------------------

    def ack(self, key: Key, now: float) -> None:
        """Mark a delivery processed; its XACK goes with the next round trip.

        Raises:
            LocalProtocolError: it was settled already or never delivered.
        """
        self.ledger.ack(key, now)

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
        return self._failed(self.ledger.take(key), now, delay, error)

    def fail_handed(self, now: float, error: str | None) -> float | None:
        """The delivery in the application's hands (auto-ack mode) failed: as :meth:`nack`.

        Raises:
            LocalProtocolError: no delivery is in the application's hands.
        """
        delivery = self.ledger.take_handed()
        if delivery is None:
            raise LocalProtocolError("no payload of this consumer is in the application's hands")
        return self._failed(delivery, now, None, error)

    def _failed(
        self, delivery: Delivery, now: float, delay: float | None, error: str | None
    ) -> float | None:
        key = (delivery.stream, delivery.id)
        if error is not None:
            self.ledger.errors[key] = error[:MAX_ERROR_CHARS]
        policy = self.config.redelivery
        if delivery.deliveries >= policy.max_deliveries:
            self.dead.append(
                DeadEntry(
                    delivery.stream,
                    delivery.id,
                    encode_payload(delivery.payload),
                    f"failed on delivery {delivery.deliveries} of {policy.max_deliveries}",
                    delivery.deliveries,
                    self.ledger.errors.get(key),
                )
            )
            return None
        wait = (
            policy.retry_delay(delivery.deliveries, self.rng) if delay is None else max(0.0, delay)
        )
        self.ledger.retry_later(delivery, now + wait)
        self.stats.retried += 1
        return wait

    # -- flows --------------------------------------------------------------

    def run(self) -> Flow[None]:
        """The endless consuming flow: yields round trips, sleeps and deliveries."""
        self._to(ConsumerState.STARTING)
        try:
            # The first round trip doubles as the start-up check: a transport
            # error here propagates instead of entering the retry loop.
            yield from self._discover()
        except BaseException:
            self._to(ConsumerState.NEW)
            raise
        self._to(ConsumerState.RUNNING)
        while True:
            if self.dead:
                yield from self._bury()
            if self.buffer:
                if self._ahead_due():
                    yield from self._send_ahead()
                resume = yield self._hand_out()
                self.now = resume.now
                self._settle_handed(resume.now)
                # With the buffer empty the acks ride with the refill's read.
                if self.buffer and self._ack_due():
                    yield from self._call(Batch(tuple(self.ledger.ack_commands())))
                    self._acked()
            elif self.ahead is not None:
                yield from self._collect_ahead()
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
        if not self.buffer or self.dead or self._ack_due() or self._ahead_due():
            return None
        return self._hand_out()

    def _hand_out(self) -> Delivery:
        delivery = self.buffer.popleft()
        self.ledger.hand(delivery, auto_ack=self.config.auto_ack)
        self.stats.delivered += 1
        if self.batch_handed == 0:
            self.batch_started = self.now
        self.batch_handed += 1
        return delivery

    # -- read-ahead ---------------------------------------------------------

    def _ahead_due(self) -> bool:
        cfg, plan = self.config, self.plan
        left = len(self.buffer)
        # Cheapest first: this runs for every entry handed out.
        if left > cfg.prefetch // 2 or self.ahead is not None or not left:
            return False
        if not cfg.read_ahead or self.dead or plan.drained or self.batch_handed < 2:
            return False
        stream = plan.lone_stream()
        if stream is None or plan.cursors[stream].history:
            return False
        now = self.now
        next_retry = self.ledger.next_retry()
        if (
            now >= plan.next_claim_at
            or self._discovery_due()
            or (cfg.stale_consumer_ms is not None and now >= self.next_stale_check_at)
            or (next_retry is not None and next_retry <= now)
        ):
            return False
        # Entries of a read in flight are not renewed until collected: the
        # buffered ones, at the pace this buffer was handed out so far, must
        # take less than a third of the lease interval.
        assert self.batch_started is not None
        pace = (now - self.batch_started) / (self.batch_handed - 1)
        return pace * (left + 1) < cfg.claim_min_idle_ms / 1000 / 9

    def _send_ahead(self) -> Flow[None]:
        (stream,) = self.plan.cursors
        read = self.plan.read(stream)
        acks = self.ledger.ack_commands()
        taken = self.ledger.take_acks()
        batch = Batch((*acks, read))
        try:
            resume = yield Ahead(batch)
        except (Interrupted, TransportError):
            self._lost_ahead(taken)
            return
        self.now = resume.now
        self.ahead = (resume.reply, batch, read, taken)
        self.stats.read_ahead += 1

    def _collect_ahead(self) -> Flow[None]:
        assert self.ahead is not None
        ticket, batch, read, taken = self.ahead
        self.ahead = None
        try:
            resume = yield Collect(ticket)
            self.now = resume.now
            replies = batch.parse_reply(resume.reply)
        except (Interrupted, TransportError):
            # What the read fetched is ours to re-read; the acks go again.
            self._lost_ahead(taken)
            return
        self.stats.acked += self.ledger.confirm(taken)
        self._accept((yield from self._took(read, replies[-1])))

    def _lost_ahead(self, taken: dict[str, list[str]]) -> None:
        self.ledger.requeue(taken, self.now)
        self.plan.reread()

    def _settle_handed(self, now: float) -> None:
        # auto_ack: asking for the next delivery means the last one was processed.
        ledger = self.ledger
        key = ledger.handed
        if key is not None:
            ledger.handed = None
            delivery = ledger.outstanding.pop(key, None)
            if delivery is not None:
                ledger.owe_ack(delivery.stream, delivery.id, now)

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
        if self.state in (ConsumerState.NEW, ConsumerState.CLOSED):
            self.state = ConsumerState.CLOSED
            return
        self._to(ConsumerState.CLOSING)
        ledger, cfg = self.ledger, self.config
        if self.ahead is not None:
            # Its reply will not be read (the driver drops the connection):
            # send its acks again; what it fetched is released below.
            ledger.requeue(self.ahead[3], self.now)
            self.ahead = None
        if cfg.auto_ack and processed:
            for key in list(ledger.outstanding):
                ledger.ack(key, self.now)
        try:
            if self.dead:
                yield from self._bury(retry=False)
            acks = ledger.ack_commands()
            mine = [
                XPendingRange(name, cfg.group, count=10_000, consumer=cfg.consumer)
                for name in self.plan.cursors
            ]
            if acks or mine:
                batch = Batch((*acks, *mine))
                resume = yield batch
                replies = batch.parse_reply(resume.reply)
                self._acked()
                release = [
                    XClaimIds(cmd.stream, cfg.group, cfg.consumer, ids, cfg.claim_min_idle_ms)
                    for cmd, rows in zip(mine, replies[len(acks) :], strict=True)
                    if (ids := tuple(row.id for row in rows))
                ]
                if release:
                    batch = Batch(tuple(release))
                    resume = yield batch
                    released = batch.parse_reply(resume.reply)
                    self.stats.released += sum(len(ids) for ids in released)
        except (TransportError, CommandError) as exc:
            # One attempt only: what is left stays pending and is reclaimed
            # by other consumers after the idle threshold.
            logger.warning("could not settle entries on close (%s); they stay pending", exc)
        finally:
            self.buffer.clear()
            ledger.clear()
            self.state = ConsumerState.CLOSED

    # -- steps ----------------------------------------------------------

    def _once(self, step: RoundTrip) -> Flow[Any]:
        resume = yield step
        self.now = resume.now
        return step.parse_reply(resume.reply)

    def _tick(self, now: float) -> None:
        self.now = now

    def _fatal(self, exc: TransportError) -> bool:
        return self.state is ConsumerState.STARTING and fails_at_start(exc)

    def _call(self, step: RoundTrip) -> Flow[Any]:
        """Run one round trip, retrying transport errors with backoff; the lost
        reply may have delivered entries to us, so they are re-read first."""
        return (yield from self._retried(lambda: self._once(step)))

    def _call_partial(self, batch: Batch) -> Flow[list[Any]]:
        """:meth:`_call` of a plain batch whose commands may go to several
        cluster nodes: each command's value, or :class:`Lost` for those whose
        node did not answer while others did. Only when none answered is it
        a transport error (retried, with everything re-read)."""
        return (yield from self._retried(lambda: self._once_partial(batch)))

    def _retried(self, attempt: Callable[[], Flow[T]]) -> Flow[T]:
        return (
            yield from retrying(
                attempt,
                self.backoff,
                lambda: self.now,
                fatal=self._fatal,
                lost=self.plan.reread,
                tick=self._tick,
            )
        )

    def _once_partial(self, batch: Batch) -> Flow[list[Any]]:
        resume = yield batch
        self.now = resume.now
        raw = resume.reply
        if not isinstance(raw, list | tuple) or len(raw) != len(batch.commands):
            raise RemoteProtocolError("batch reply does not match its commands")
        return [
            r if type(r) is Lost else cmd.parse_reply(r)
            for cmd, r in zip(batch.commands, raw, strict=True)
        ]

    def _discover(self) -> Flow[None]:
        cfg = self.config
        new = yield from discover(
            self._call, cfg.group, cfg.registry_key, cfg.streams, self.plan.cursors
        )
        for name in new:
            self.plan.add(name)
        self.next_discovery_at = self.now + cfg.discovery_interval

    def _discovery_due(self) -> bool:
        """Registry streams are looked for periodically; configured ones only
        while some could not be joined (Redis was out of memory)."""
        streams = self.config.streams
        if streams is not None and len(self.plan.cursors) == len(streams):
            return False
        return self.now >= self.next_discovery_at

    def _refill(self) -> Flow[None]:
        cfg, plan, ledger = self.config, self.plan, self.ledger
        if self._discovery_due():
            yield from self._discover()
        if cfg.stale_consumer_ms is not None and self.now >= self.next_stale_check_at:
            self.next_stale_check_at = self.now + cfg.stale_check_interval
            self.stats.stale_consumers_removed += yield from remove_stale_consumers(
                plan.cursors, cfg.group, cfg.consumer, cfg.stale_consumer_ms, self.backoff, self.now
            )
        if not plan.cursors:
            # Nothing published yet: wait for the registry to name a stream.
            resume = yield Sleep(min(0.5, cfg.discovery_interval))
            self.now = resume.now
            return
        if len(ledger.outstanding) >= cfg.prefetch:
            # Explicit mode with a full hand: wait for settlements.
            if ledger.acks:
                yield from self._call(Batch(tuple(ledger.ack_commands())))
                self._acked()
            resume = yield Sleep(0.01)
            self.now = resume.now
            return
        next_retry = ledger.next_retry()
        lone = plan.may_block_at_once(self.now, next_retry is not None and next_retry <= self.now)
        if lone is not None:
            # The last read found the stream empty and nothing else is due: go
            # straight to the blocking read, with the acks in front of it in
            # the same round trip (one round trip per message at low rates).
            yield from self._block()
            return
        acks = ledger.ack_commands()
        reads = plan.reads()
        claims = plan.claims(self.now)
        retries = plan.retries(ledger.due_retries(self.now))
        # Order matters: acks first (so history reads skip them), then reads,
        # then claims (so a history read cannot return what we just claimed).
        replies = yield from self._call_partial(Batch((*acks, *reads, *claims, *retries)))
        acked = zip(acks, replies[: len(acks)], strict=True)
        lost = {ack.stream for ack, reply in acked if type(reply) is Lost}
        self.stats.acked += ledger.acked(lost, self.now)
        replies = replies[len(acks) :]
        recounted: list[StreamEntry] = []
        for read, reply in zip(reads, replies[: len(reads)], strict=True):
            if type(reply) is Lost:
                # Its node did not answer (the others did): read it again,
                # own pending entries first, on the next round.
                plan.cursors[read.stream].history = True
                continue
            entries = yield from self._took(read, reply)
            if read.start_id == ">":
                self._accept(entries)
            else:
                recounted.extend(entries)
        replies = replies[len(reads) :]
        for claim, page in zip(claims, replies[: len(claims)], strict=True):
            if type(page) is not Lost:  # lost: the next claim round covers it
                recounted.extend((yield from self._took_claim(claim, page)))
        for retry, reply in zip(retries, replies[len(claims) :], strict=True):
            if type(reply) is Lost:
                ledger.retry_again(retry.stream, retry.ids, self.now)
            elif isinstance(reply, GroupMissing):
                yield from self._group_missing(retry.stream)
            else:
                recounted.extend(reply)
        if recounted:
            queries = count_queries(recounted, cfg.group, cfg.consumer, len(ledger.held))
            pages = yield from self._call(queries)
            self._accept(recounted, counts(queries, pages))
        if self.buffer or (self.dead and self.now >= self.next_burial_at) or plan.rereading():
            return
        if plan.lone_stream() is not None:
            yield from self._block()
            return
        blocking = plan.blocking_reads(self.now, ledger.next_retry())
        answers = yield from self._call(Race(tuple(blocking)))
        for read, reply in zip(blocking, answers, strict=True):
            if reply is NOT_RUN or type(reply) is Lost:
                # Called off mid-flight: Redis may have served it anyway.
                plan.cursors[read.stream].history = True
            else:
                self._accept((yield from self._took(read, reply)))

    def _block(self) -> Flow[None]:
        """One stream: pending acks, then a blocking read, in one round trip."""
        (read,) = self.plan.blocking_reads(self.now, self.ledger.next_retry())
        replies = yield from self._call(Batch((*self.ledger.ack_commands(), read)))
        self._acked()
        self._accept((yield from self._took(read, replies[-1])))

    def _took(self, read: XReadGroup, reply: Any) -> Flow[tuple[StreamEntry, ...]]:
        if isinstance(reply, GroupMissing):
            yield from self._group_missing(read.stream)
            return ()
        if isinstance(reply, Unblocked):
            # Nothing was delivered. Read again, own pending entries first: the
            # next read meets NOGROUP (recovered by policy) or READONLY
            # (retried), or the stream as it is now.
            self.stats.unblocked += 1
            logger.warning("blocking read of %s ended by Redis: %s", read.stream, reply.message)
            self.plan.add(read.stream)
            return ()
        self.plan.took(read, reply)
        entries: tuple[StreamEntry, ...] = reply
        return entries

    def _took_claim(
        self, claim: XAutoClaim, reply: ClaimPage | GroupMissing
    ) -> Flow[tuple[StreamEntry, ...]]:
        if isinstance(reply, GroupMissing):
            yield from self._group_missing(claim.stream)
            return ()
        self.plan.took_claim(claim, reply)
        if reply.entries:
            self.stats.reclaimed += len(reply.entries)
            logger.info(
                "reclaimed %d idle entries of %s from other consumers",
                len(reply.entries),
                claim.stream,
            )
        return reply.entries

    def _accept(
        self, entries: Iterable[StreamEntry], counted: dict[Key, int] | None = None
    ) -> None:
        limit = self.config.redelivery.max_deliveries
        loads, max_bytes = self.config.loads, self.config.max_payload_bytes
        ledger, buffer = self.ledger, self.buffer
        held, errors = ledger.held, ledger.errors
        self.batch_handed = 0
        if counted is None and limit >= 1:
            # New entries (read with '>'), the hot path: on their first
            # delivery, so only decoding can fail.
            for entry in entries:
                key = (entry.stream, entry.id)
                if key in held:
                    continue
                held.add(key)
                decoded = decode_entry(entry, 1, loads, max_bytes)
                if type(decoded) is Delivery:
                    buffer.append(decoded)
                elif entry.fields is None:
                    ledger.owe_ack(entry.stream, entry.id, self.now)  # deleted while pending
                else:
                    reason = decoded.reason  # type: ignore[union-attr]
                    self.dead.append(DeadEntry(entry.stream, entry.id, entry.fields, reason, 1))
            ledger.version += 1
            return
        for entry in entries:
            key = (entry.stream, entry.id)
            if key in held:
                continue
            held.add(key)
            deliveries = 1 if counted is None else counted.get(key, 1)
            error = errors.get(key) if errors else None
            verdict = admit(entry, deliveries, limit, loads, error, max_bytes)
            if type(verdict) is Delivery:
                buffer.append(verdict)
            elif verdict is None:
                ledger.owe_ack(entry.stream, entry.id, self.now)  # deleted while pending
            else:
                self.dead.append(verdict)  # type: ignore[arg-type]
        ledger.version += 1

    def _bury(self, *, retry: bool = True) -> Flow[None]:
        """Move dead letters to their dead-letter streams, acked in the same MULTI.

        Out of memory, they wait (held, so leased) and are tried again a
        second later, while consuming goes on: consuming is what frees memory.
        """
        cfg = self.config
        if retry and self.now < self.next_burial_at:
            return
        for batch, entries in burials(self.dead, cfg.group, cfg.consumer):
            try:
                if retry:
                    yield from self._call(batch)
                else:
                    resume = yield batch
                    batch.parse_reply(resume.reply)
            except OutOfMemory:
                if not retry:
                    raise
                logger.warning(
                    "%d dead letters wait: Redis is out of memory; trying again in 1 s",
                    len(self.dead),
                )
                self.next_burial_at = self.now + 1.0
                return
            for dead in entries:
                logger.warning(
                    "entry %s of %s dead-lettered to %s: %s",
                    dead.id,
                    dead.stream,
                    dead_letter_stream(dead.stream),
                    dead.reason,
                )
                self.ledger.release((dead.stream, dead.id))
            self.stats.dead_lettered += len(entries)
            # Dropped as each batch lands: an OOM on a later one leaves the rest.
            buried = {(d.stream, d.id) for d in entries}
            self.dead = [d for d in self.dead if (d.stream, d.id) not in buried]

    def _group_missing(self, stream: str) -> Flow[None]:
        if not (
            yield from recover(self._call, stream, self.config.group, self.config.on_missing_group)
        ):
            # Out of memory: the next discovery tries again; the rest goes on.
            self.plan.cursors.pop(stream, None)
            self.next_discovery_at = self.now + self.config.discovery_interval
            return
        self.plan.add(stream)
        self.stats.groups_recreated += 1
        buffered = {(d.stream, d.id) for d in self.buffer if d.stream == stream}
        lost = self.ledger.lose_stream(stream, keep=buffered)
        if lost:
            # Said once per loss: their acks went, or will go, nowhere.
            self.stats.lost_with_group += lost
            logger.warning(
                "%d entries of %s received before group %s vanished cannot be "
                "acknowledged; they were handed out, or failed and waited for a retry",
                lost,
                stream,
                self.config.group,
            )

    # -- acks -------------------------------------------------------------

    def _ack_due(self) -> bool:
        first = self.ledger.first_ack_at
        if first is None:
            return False
        cfg = self.config
        return self.ledger.ack_count >= cfg.prefetch or self.now - first >= cfg.ack_interval

    def _acked(self) -> None:
        self.stats.acked += self.ledger.acked()
