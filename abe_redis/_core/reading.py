"""Read planning: which XREADGROUP, XAUTOCLAIM and XCLAIM a consumer sends next.

Each stream has a cursor. While ``history`` is set the consumer re-reads
its own pending entries (id ``0`` onwards, page by page) before new ones
(``>``): on start, after a transport error and after a read that was
called off, since any of them may have left entries delivered to us that we
never saw. Entries of dead consumers are taken over with XAUTOCLAIM once
idle for ``claim_min_idle_ms``, at most every ``claim_interval`` seconds.
A blocking read never waits past the next retry that is due.

A consumer waits on at most :data:`MAX_BLOCKING_READS` streams at once (each
blocking read holds a connection): the ones that brought entries most
recently. Every round reads all streams without blocking first, so a stream
outside that set waits at most one BLOCK window (``REDIS_BLOCK_MS``) longer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .commands import XAutoClaim, XClaimEntries, XReadGroup
from .entries import ClaimPage, StreamEntry

MAX_BLOCKING_READS = 16
"""Streams one consumer waits on at once (one connection each), at most."""


@dataclass(slots=True)
class Cursor:
    """Where reading one stream stands."""

    history: bool = True
    history_from: str = "0"
    claim_from: str = "0-0"
    active: int = 0
    """When it last brought entries (the plan's read count then)."""


@dataclass(slots=True)
class ReadPlan:
    """The cursors of one consumer's streams, and the reads they call for."""

    group: str
    consumer: str
    prefetch: int
    block_ms: int
    claim_min_idle_ms: int
    claim_interval: float
    cursors: dict[str, Cursor] = field(default_factory=dict)
    drained: bool = False
    next_claim_at: float = 0.0
    reads_with_entries: int = 0

    def add(self, stream: str) -> None:
        """Start reading ``stream`` (or start over, after its group was recreated)."""
        self.cursors[stream] = Cursor()

    def reread(self) -> None:
        """Re-read every stream's own pending entries before new ones."""
        for cursor in self.cursors.values():
            cursor.history, cursor.history_from = True, "0"

    def rereading(self) -> bool:
        """Whether some stream still has own pending entries to re-read."""
        return any(c.history for c in self.cursors.values())

    def read(self, stream: str, *, block_ms: int | None = None) -> XReadGroup:
        """The next read of ``stream``: its history, or new entries."""
        cursor = self.cursors[stream]
        start = cursor.history_from if cursor.history else ">"
        return XReadGroup(self.group, self.consumer, stream, start, self.prefetch, block_ms)

    def reads(self) -> list[XReadGroup]:
        """One non-blocking read per stream."""
        return [self.read(stream) for stream in self.cursors]

    def blocking_reads(self, now: float, next_retry: float | None) -> list[XReadGroup]:
        """One blocking read of new entries per stream, for the
        :data:`MAX_BLOCKING_READS` streams that brought entries last."""
        block_ms = self.block_ms
        if next_retry is not None:
            block_ms = min(block_ms, max(1, int((next_retry - now) * 1000)))
        streams = list(self.cursors)
        if len(streams) > MAX_BLOCKING_READS:
            cursors = self.cursors
            streams = sorted(streams, key=lambda s: cursors[s].active, reverse=True)
            streams = streams[:MAX_BLOCKING_READS]
        return [self.read(stream, block_ms=block_ms) for stream in streams]

    def claims(self, now: float) -> list[XAutoClaim]:
        """XAUTOCLAIM of every stream when the claim interval has passed, else none."""
        if now < self.next_claim_at:
            return []
        self.next_claim_at = now + self.claim_interval
        return [
            XAutoClaim(
                stream,
                self.group,
                self.consumer,
                self.claim_min_idle_ms,
                cursor.claim_from,
                self.prefetch,
            )
            for stream, cursor in self.cursors.items()
        ]

    def retries(self, due: dict[str, tuple[str, ...]]) -> list[XClaimEntries]:
        """XCLAIM of the retries now due (each counts one more delivery)."""
        return [XClaimEntries(s, self.group, self.consumer, ids) for s, ids in due.items()]

    def took(self, read: XReadGroup, entries: tuple[StreamEntry, ...]) -> None:
        """Advance the cursor after ``read`` brought ``entries``."""
        if entries:
            self.reads_with_entries += 1
            self.cursors[read.stream].active = self.reads_with_entries
        if read.start_id == ">":
            self.drained = len(entries) < read.count
            return
        cursor = self.cursors[read.stream]
        if len(entries) < read.count:
            cursor.history, cursor.history_from = False, "0"
        else:
            cursor.history_from = entries[-1].id

    def took_claim(self, claim: XAutoClaim, page: ClaimPage) -> None:
        """Advance the claim cursor."""
        self.cursors[claim.stream].claim_from = page.next_start

    def lone_stream(self) -> str | None:
        """The stream when there is exactly one."""
        if len(self.cursors) != 1:
            return None
        (stream,) = self.cursors
        return stream

    def may_block_at_once(self, now: float, retry_due: bool) -> str | None:
        """The stream to go straight to a blocking read of, skipping the
        non-blocking one: one stream, found drained by the last read, no
        history to re-read, no claim or retry due."""
        stream = self.lone_stream()
        if stream is None or not self.drained or now >= self.next_claim_at or retry_due:
            return None
        return None if self.cursors[stream].history else stream
