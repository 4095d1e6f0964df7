"""Consumer-group reading as a sans-IO state machine.

Rules this module keeps:

* At least once. An entry is acknowledged only after the application asked
  for the next one (it finished the previous) or closed the consumer saying
  it had processed it. Acks are batched and ride with the next read.
* Nothing stuck. On start, after a transport error, and after a read that
  was cancelled, the consumer re-reads its own pending entries (id ``0``)
  before new ones, because Redis may have delivered entries whose reply we
  never saw. Entries of dead consumers are taken over with XAUTOCLAIM once
  idle for ``claim_min_idle_ms``. Entries we cannot decode are moved to
  ``<stream>:dlq`` with the reason and acknowledged in one MULTI.
* One key per command. Each stream gets its own XREADGROUP, so a cluster
  transport can route and run them concurrently.
* No clock. ``now`` arrives with every :class:`Resume`.

States and their allowed transitions are in :data:`TRANSITIONS`.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import LocalProtocolError, TransportError
from .codec import Undecodable, decode_entry, is_internal
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
    XClaimRelease,
    XGroupCreate,
    XReadGroup,
)
from .entries import ClaimPage, Delivery, StreamEntry
from .policy import Backoff
from .steps import Flow, Interrupted, Sleep

logger = logging.getLogger("abe_redis")

DLQ_SUFFIX = ":dlq"


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


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """What one consumer reads and how; all durations in ms or seconds as named."""

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


@dataclass(slots=True)
class _Stream:
    history: bool = True
    history_from: str = "0"
    claim_from: str = "0-0"


@dataclass(slots=True)
class ConsumerCore:
    """State of one consumer; :meth:`run` and :meth:`close` are its flows."""

    config: ConsumerConfig
    backoff: Backoff = field(default_factory=Backoff)
    state: ConsumerState = ConsumerState.NEW
    streams: dict[str, _Stream] = field(default_factory=dict)
    buffer: deque[Delivery] = field(default_factory=deque)
    in_flight: Delivery | None = None
    acks: dict[str, list[str]] = field(default_factory=dict)
    held: set[tuple[str, str]] = field(default_factory=set)
    now: float = 0.0
    first_ack_at: float | None = None
    next_claim_at: float = 0.0
    next_discovery_at: float = 0.0
    dead_lettered: int = 0

    # -- state ------------------------------------------------------------

    def _to(self, new: ConsumerState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise LocalProtocolError(f"consumer cannot go from {self.state.value} to {new.value}")
        self.state = new

    # -- flows --------------------------------------------------------------

    def run(self) -> Flow[None]:
        """The endless consuming flow: yields commands, sleeps and deliveries."""
        self._to(ConsumerState.STARTING)
        # The first round trip doubles as the start-up check: a transport
        # error here propagates instead of entering the retry loop.
        yield from self._discover()
        self._to(ConsumerState.RUNNING)
        while True:
            if self.buffer:
                delivery = self.buffer.popleft()
                self.in_flight = delivery
                resume = yield delivery
                self.in_flight = None
                self._processed(delivery, resume.now)
                if self._ack_due():
                    yield from self._call(Pipeline(tuple(self._ack_commands())))
                    self._acked()
            else:
                yield from self._refill()

    def close(self, *, processed: bool) -> Flow[None]:
        """Flow that settles what this consumer holds before it goes away.

        Acknowledges what was processed (and the delivery in the
        application's hands when ``processed``), and releases the rest so
        another consumer can claim it at once. One attempt only: on a
        transport error the entries stay pending and are reclaimed after
        the idle threshold.
        """
        if self.state is ConsumerState.NEW:
            self._to(ConsumerState.CLOSED)
            return
        if self.state is ConsumerState.CLOSED:
            return
        self._to(ConsumerState.CLOSING)
        if self.in_flight is not None:
            if processed:
                self._processed(self.in_flight, self.now)
            else:
                self.buffer.appendleft(self.in_flight)
            self.in_flight = None
        release: dict[str, list[str]] = {}
        for delivery in self.buffer:
            release.setdefault(delivery.stream, []).append(delivery.id)
        commands: list[Command[Any]] = self._ack_commands()
        commands += [
            XClaimRelease(
                stream,
                self.config.group,
                self.config.consumer,
                tuple(ids),
                self.config.claim_min_idle_ms,
            )
            for stream, ids in release.items()
        ]
        self.buffer.clear()
        try:
            if commands:
                pipe = Pipeline(tuple(commands))
                resume = yield pipe
                pipe.parse_reply(resume.reply)
                self._acked()
        except TransportError as exc:
            logger.warning("could not settle entries on close (%s); they stay pending", exc)
        finally:
            self.state = ConsumerState.CLOSED

    # -- steps ----------------------------------------------------------

    def _call(self, cmd: Command[Any]) -> Flow[Any]:
        while True:
            try:
                resume = yield cmd
            except Interrupted:
                # Cancelled mid-command: send it again, but first treat any
                # entries it may have delivered as ours to re-read.
                self._reread_pending()
                continue
            except TransportError as exc:
                if self.state is ConsumerState.STARTING:
                    raise
                # The lost reply may have delivered entries to us.
                self._reread_pending()
                resume = yield Sleep(self.backoff.failure(exc, self.now))
                self.now = resume.now
                continue
            self.now = resume.now
            self.backoff.success(self.now)
            return cmd.parse_reply(resume.reply)

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
        if not self.streams:
            # Nothing published yet: wait for the registry to name a stream.
            resume = yield Sleep(min(0.5, cfg.discovery_interval))
            self.now = resume.now
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
        # Order matters: acks first (so history reads skip them), then reads,
        # then claims (so a history read cannot return what we just claimed).
        replies = yield from self._call(Pipeline((*acks, *reads, *claims)))
        self._acked()
        for read, reply in zip(reads, replies[len(acks) : len(acks) + len(reads)], strict=True):
            yield from self._take_read(read, reply)
        for claim, reply in zip(claims, replies[len(acks) + len(reads) :], strict=True):
            yield from self._take_claim(claim, reply)
        if self.buffer or any(s.history for s in self.streams.values()):
            return
        blocking = [self._read(name, state, block=True) for name, state in self.streams.items()]
        if len(blocking) == 1:
            reply = yield from self._call(blocking[0])
            yield from self._take_read(blocking[0], reply)
            return
        answers = yield from self._call(AnyOf(tuple(blocking)))
        for read, reply in zip(blocking, answers, strict=True):
            if reply is NOT_RUN:
                # Cancelled mid-flight: Redis may have served it anyway.
                self.streams[read.stream].history = True
            else:
                yield from self._take_read(read, reply)

    def _read(self, name: str, state: _Stream, *, block: bool = False) -> XReadGroup:
        cfg = self.config
        return XReadGroup(
            cfg.group,
            cfg.consumer,
            name,
            state.history_from if state.history else ">",
            cfg.prefetch,
            cfg.block_ms if block else None,
        )

    def _take_read(self, read: XReadGroup, reply: Any) -> Flow[None]:
        state = self.streams[read.stream]
        if isinstance(reply, GroupMissing):
            yield from self._recreate_group(read.stream)
            return
        entries: tuple[StreamEntry, ...] = reply
        if read.start_id != ">":
            if len(entries) < read.count:
                state.history, state.history_from = False, "0"
            else:
                state.history_from = entries[-1].id
        yield from self._accept(entries)

    def _take_claim(self, claim: XAutoClaim, reply: ClaimPage | GroupMissing) -> Flow[None]:
        if isinstance(reply, GroupMissing):
            yield from self._recreate_group(claim.stream)
            return
        self.streams[claim.stream].claim_from = reply.next_start
        if reply.entries:
            logger.info(
                "reclaimed %d idle entries of %s from other consumers",
                len(reply.entries),
                claim.stream,
            )
        yield from self._accept(reply.entries)

    def _accept(self, entries: Iterable[StreamEntry]) -> Flow[None]:
        for entry in entries:
            key = (entry.stream, entry.id)
            if key in self.held:
                continue
            decoded = decode_entry(entry)
            if isinstance(decoded, Undecodable):
                yield from self._dead_letter(decoded)
                continue
            self.held.add(key)
            self.buffer.append(decoded)

    def _dead_letter(self, bad: Undecodable) -> Flow[None]:
        entry = bad.entry
        ack = XAck(entry.stream, self.config.group, (entry.id,))
        if entry.fields is None:
            # Deleted while pending: nothing is left to keep; clear the PEL.
            yield from self._call(ack)
            return
        record = (
            (b"reason", bad.reason.encode()),
            (b"source_stream", entry.stream.encode()),
            (b"source_id", entry.id.encode()),
            (b"group", self.config.group.encode()),
            *((b"field:" + name, value) for name, value in entry.fields),
        )
        dlq = entry.stream + DLQ_SUFFIX
        logger.warning(
            "entry %s of %s cannot be decoded (%s); moved to %s",
            entry.id,
            entry.stream,
            bad.reason,
            dlq,
        )
        yield from self._call(Pipeline((XAdd(dlq, record), ack), transaction=True))
        self.dead_lettered += 1

    def _recreate_group(self, stream: str) -> Flow[None]:
        logger.warning(
            "consumer group %s of stream %s vanished; recreating it from the start of the stream",
            self.config.group,
            stream,
        )
        yield from self._call(XGroupCreate(stream, self.config.group, "0"))
        self.streams[stream] = _Stream()

    # -- acks -------------------------------------------------------------

    def _processed(self, delivery: Delivery, now: float) -> None:
        if self.first_ack_at is None:
            self.first_ack_at = now
        self.now = now
        self.acks.setdefault(delivery.stream, []).append(delivery.id)

    def _ack_due(self) -> bool:
        if self.first_ack_at is None:
            return False
        pending = sum(len(ids) for ids in self.acks.values())
        return (
            pending >= self.config.prefetch
            or self.now - self.first_ack_at >= self.config.ack_interval
        )

    def _ack_commands(self) -> list[Command[Any]]:
        return [
            XAck(stream, self.config.group, tuple(ids)) for stream, ids in self.acks.items() if ids
        ]

    def _acked(self) -> None:
        for stream, ids in self.acks.items():
            for entry_id in ids:
                self.held.discard((stream, entry_id))
        self.acks.clear()
        self.first_ack_at = None
