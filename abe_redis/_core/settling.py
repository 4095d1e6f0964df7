"""The ack ledger: what one consumer holds, what it owes Redis, what comes back later.

* *Held* entries are every id this consumer has fetched and not yet
  acknowledged or dead-lettered: buffered, handed out, awaiting their ack
  or their retry. They are what its leases renew; ``version`` changes
  whenever the set does.
* *Outstanding* deliveries are handed out and not settled yet. Settling one
  twice, or one never delivered, is a :class:`LocalProtocolError`.
* Acks are batched per stream and sent with the consumer's next round trip;
  :meth:`Ledger.acked` is called once Redis has them.
* Retries (nacked deliveries) wait in a heap by due time.
"""

from __future__ import annotations

import heapq
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from ..errors import LocalProtocolError
from .commands import XAck
from .entries import Delivery

Key = tuple[str, str]
"""(stream, entry id)"""


@dataclass(slots=True)
class Ledger:
    """See the module docstring."""

    group: str
    held: set[Key] = field(default_factory=set)
    version: int = 0
    outstanding: dict[Key, Delivery] = field(default_factory=dict)
    handed: Key | None = None
    acks: dict[str, list[str]] = field(default_factory=dict)
    ack_count: int = 0
    first_ack_at: float | None = None
    retries: list[tuple[float, str, str]] = field(default_factory=list)
    errors: dict[Key, str] = field(default_factory=dict)

    # -- held entries -------------------------------------------------------

    def hold(self, key: Key) -> bool:
        """Hold ``key``; False when it is held already (fetched twice)."""
        if key in self.held:
            return False
        self.held.add(key)
        self.version += 1
        return True

    def release(self, key: Key) -> None:
        """Stop holding ``key`` (acked, dead-lettered or sent back for a retry)."""
        self.held.discard(key)
        self.errors.pop(key, None)
        self.version += 1

    def leases(self) -> dict[str, tuple[str, ...]]:
        """Every held id, by stream."""
        out: dict[str, list[str]] = {}
        for stream, entry_id in self.held:
            out.setdefault(stream, []).append(entry_id)
        return {stream: tuple(ids) for stream, ids in out.items()}

    # -- handing out and settling ----------------------------------------------

    def hand(self, delivery: Delivery, *, auto_ack: bool) -> None:
        """Record ``delivery`` as handed out; in auto-ack mode it is the one in hand."""
        key = (delivery.stream, delivery.id)
        self.outstanding[key] = delivery
        if auto_ack:
            self.handed = key

    def take(self, key: Key) -> Delivery:
        """Remove an outstanding delivery to settle it.

        Raises:
            LocalProtocolError: it was settled already or never delivered.
        """
        delivery = self.outstanding.pop(key, None)
        if delivery is None:
            raise LocalProtocolError(
                f"entry {key[1]} of {key[0]} is not an unsettled delivery of this consumer "
                "(settled already, or never delivered)"
            )
        return delivery

    def take_handed(self) -> Delivery | None:
        """The delivery in the application's hands (auto-ack mode), taken to settle."""
        key, self.handed = self.handed, None
        if key is None or key not in self.outstanding:
            return None
        return self.take(key)

    def ack(self, key: Key, now: float) -> None:
        """Settle an outstanding delivery as processed.

        Raises:
            LocalProtocolError: it was settled already or never delivered.
        """
        delivery = self.take(key)
        self.owe_ack(delivery.stream, delivery.id, now)

    def owe_ack(self, stream: str, entry_id: str, now: float) -> None:
        """Queue an XACK for the next round trip."""
        if self.first_ack_at is None:
            self.first_ack_at = now
        self.acks.setdefault(stream, []).append(entry_id)
        self.ack_count += 1

    def ack_due(self, now: float, batch: int, interval: float) -> bool:
        """Whether the queued acks should go out without waiting for a read."""
        if self.first_ack_at is None:
            return False
        return self.ack_count >= batch or now - self.first_ack_at >= interval

    def ack_commands(self) -> list[XAck]:
        """The XACKs owed, one per stream."""
        return [XAck(stream, self.group, tuple(ids)) for stream, ids in self.acks.items() if ids]

    def acked(self, lost: AbstractSet[str] = frozenset(), now: float = 0.0) -> int:
        """Redis has the acks of :meth:`ack_commands`: release them; returns how many.

        Those of the streams in ``lost`` did not reach Redis (their cluster
        node did not answer): they are owed again, from ``now``.
        """
        taken = self.take_acks()
        if lost:
            self.requeue({s: taken.pop(s) for s in lost if s in taken}, now)
        return self.confirm(taken)

    def take_acks(self) -> dict[str, list[str]]:
        """The acks owed, taken out to go with a round trip whose answer comes later."""
        taken, self.acks = self.acks, {}
        self.ack_count = 0
        self.first_ack_at = None
        return taken

    def confirm(self, taken: dict[str, list[str]]) -> int:
        """Redis has these acks: release their entries; returns how many."""
        count = 0
        held, errors = self.held, self.errors
        for stream, ids in taken.items():
            count += len(ids)
            for entry_id in ids:
                held.discard((stream, entry_id))
                if errors:
                    errors.pop((stream, entry_id), None)
        if count:
            self.version += 1
        return count

    def requeue(self, taken: dict[str, list[str]], now: float) -> None:
        """The round trip carrying these acks was lost: owe them again (XACK is idempotent)."""
        for stream, ids in taken.items():
            for entry_id in ids:
                self.owe_ack(stream, entry_id, now)

    # -- retries ----------------------------------------------------------

    def retry_later(self, delivery: Delivery, due: float) -> None:
        """Deliver ``delivery`` again at ``due`` (it stays held until then)."""
        heapq.heappush(self.retries, (due, delivery.stream, delivery.id))

    def next_retry(self) -> float | None:
        """When the earliest retry is due, or None."""
        return self.retries[0][0] if self.retries else None

    def due_retries(self, now: float) -> dict[str, tuple[str, ...]]:
        """Retries due by ``now``, by stream; no longer held (held again when read)."""
        due: dict[str, list[str]] = {}
        while self.retries and self.retries[0][0] <= now:
            _, stream, entry_id = heapq.heappop(self.retries)
            self.held.discard((stream, entry_id))
            self.version += 1
            due.setdefault(stream, []).append(entry_id)
        return {stream: tuple(ids) for stream, ids in due.items()}

    def retry_again(self, stream: str, ids: tuple[str, ...], now: float) -> None:
        """The XCLAIM of these due retries was lost: hold them and retry at ``now``."""
        for entry_id in ids:
            self.held.add((stream, entry_id))
            heapq.heappush(self.retries, (now, stream, entry_id))
        self.version += 1

    def lose_stream(self, stream: str, keep: set[Key]) -> int:
        """The group of ``stream`` vanished: forget what was held of it, but ``keep``.

        Acks owed and retries waiting for it go (the new group has no such
        entries); deliveries in the application's hands stay outstanding,
        so settling them does not raise (their XACK changes nothing).
        Returns how many held entries were forgotten.
        """
        gone = {key for key in self.held if key[0] == stream and key not in keep}
        if not gone:
            return 0
        self.held -= gone
        owed = self.acks.pop(stream, [])
        self.ack_count -= len(owed)
        if not self.ack_count:
            self.first_ack_at = None
        self.retries = [r for r in self.retries if r[1] != stream]
        heapq.heapify(self.retries)
        for key in gone:
            self.errors.pop(key, None)
        self.version += 1
        return len(gone)

    def clear(self) -> None:
        """Forget everything (the consumer closed)."""
        self.outstanding.clear()
        self.retries.clear()
        self.held.clear()
        self.handed = None
        self.version += 1
