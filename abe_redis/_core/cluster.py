"""Redis Cluster as data and rules: the slot map, redirects, and where a
round trip goes.

The I/O side (:mod:`abe_redis._io.cluster`) opens one pool per node and
does what these rules say; nothing here does I/O or reads a clock.

* :class:`SlotMap` is what ``CLUSTER SLOTS`` says: which primary serves
  each of the 16384 slots (see :mod:`.slots` for a key's slot).
* :func:`route` places a round trip: a command on the node of its keys' slot;
  a plain batch split into one batch per node (their replies put back in
  order with :func:`merge`); a transaction on its one slot's node.
* :func:`redirect` reads MOVED and ASK out of a reply. MOVED: the slot lives
  elsewhere now; the command goes there and the map learns it at once (and
  is refreshed in full soon, see :class:`Refresh`). ASK: the slot is being
  migrated and this key is already on the target; the command goes there
  once, after ASKING on the same connection (the wire sends it), and the
  map stays as it is.
* TRYAGAIN, CLUSTERDOWN and LOADING are error kinds the flows already retry
  (:class:`~.replies.ErrorKind.UNAVAILABLE`); UNBLOCKED ends a blocking read
  whose slot moved, and the consumer reads again (on the new owner).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import LocalProtocolError, RemoteProtocolError
from .commands import Arg, Command, _check, _NoKey
from .replies import ErrorReply, integer, text
from .slots import SLOTS, key_slot
from .steps import Batch

MAX_REDIRECTS = 5
"""Redirects followed for one command in one round trip before giving up
(a transport error, which the flows retry after a backoff)."""

REFRESH_INTERVAL = 0.5
"""Seconds between two full slot-map refreshes of one topology at most: a
burst of MOVED replies (a resharding) costs one CLUSTER SLOTS per interval,
not one per redirect."""


@dataclass(frozen=True, slots=True, order=True)
class Node:
    """A cluster node's address."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def node_at(endpoint: str, asked: Node) -> Node:
    """The node ``host:port`` names; an empty or unknown host (``:7001``,
    ``?:7001``) means the host of the node that answered, as Redis documents."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        raise RemoteProtocolError(f"Redis named a node without a port: {endpoint!r}")
    if host in ("", "?"):
        host = asked.host
    return Node(host.strip("[]"), int(port))


@dataclass(frozen=True, slots=True)
class SlotRange:
    """Slots ``start`` to ``end`` (inclusive) and the primary serving them."""

    start: int
    end: int
    primary: Node
    replicas: tuple[Node, ...] = ()


@dataclass(frozen=True, slots=True)
class SlotMap:
    """Which primary serves each slot; ranges sorted, not overlapping."""

    ranges: tuple[SlotRange, ...]
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.ranges, key=lambda r: r.start))
        object.__setattr__(self, "ranges", ordered)
        object.__setattr__(self, "_starts", tuple(r.start for r in ordered))

    def owner(self, slot: int) -> Node | None:
        """The primary serving ``slot``, or None when no node does."""
        i = bisect.bisect_right(self._starts, slot) - 1
        if i < 0:
            return None
        r = self.ranges[i]
        return r.primary if r.start <= slot <= r.end else None

    @property
    def primaries(self) -> tuple[Node, ...]:
        """Every primary, each once, in slot order."""
        return tuple(dict.fromkeys(r.primary for r in self.ranges))

    @property
    def nodes(self) -> tuple[Node, ...]:
        """Every node the map names, primaries first."""
        replicas = (n for r in self.ranges for n in r.replicas)
        return tuple(dict.fromkeys((*self.primaries, *replicas)))

    @property
    def complete(self) -> bool:
        """Whether every slot has a primary."""
        covered = sum(r.end - r.start + 1 for r in self.ranges)
        return covered == SLOTS

    def moved(self, slot: int, node: Node) -> SlotMap:
        """The map after a MOVED reply: ``slot`` alone is served by ``node``."""
        ranges: list[SlotRange] = []
        for r in self.ranges:
            if r.start <= slot <= r.end:
                if r.start < slot:
                    ranges.append(SlotRange(r.start, slot - 1, r.primary, r.replicas))
                if slot < r.end:
                    ranges.append(SlotRange(slot + 1, r.end, r.primary, r.replicas))
            else:
                ranges.append(r)
        ranges.append(SlotRange(slot, slot, node))
        return SlotMap(tuple(ranges))


@dataclass(frozen=True, slots=True)
class ClusterSlots(_NoKey, Command[SlotMap]):
    """CLUSTER SLOTS, asked of ``asked``: the slot map.

    On a server without cluster mode the reply is an error; the command
    raises it as :class:`~abe_redis.errors.CommandError`.
    """

    name: ClassVar[str] = "CLUSTER SLOTS"
    asked: Node

    def to_args(self) -> tuple[Arg, ...]:
        return ("CLUSTER", "SLOTS")

    def parse_reply(self, raw: Any) -> SlotMap:
        raw = _check(self, raw)
        if not isinstance(raw, list | tuple):
            raise RemoteProtocolError("CLUSTER SLOTS reply is not a list")
        ranges = []
        for item in raw:
            if not isinstance(item, list | tuple) or len(item) < 3:
                raise RemoteProtocolError("CLUSTER SLOTS range is not [start, end, node...]")
            start, end = integer(item[0]), integer(item[1])
            nodes = [self._node(n) for n in item[2:]]
            ranges.append(SlotRange(start, end, nodes[0], tuple(nodes[1:])))
        return SlotMap(tuple(ranges))

    def _node(self, raw: Any) -> Node:
        if not isinstance(raw, list | tuple) or len(raw) < 2:
            raise RemoteProtocolError("CLUSTER SLOTS node is not [host, port, ...]")
        host = text(raw[0])
        return Node(self.asked.host if host in ("", "?") else host, integer(raw[1]))


def is_not_a_cluster(reply: ErrorReply) -> bool:
    """Whether CLUSTER SLOTS was refused because the server runs without
    cluster mode (or does not know the command: a proxy, fakeredis)."""
    message = reply.message.lower()
    return "cluster support disabled" in message or "unknown" in message


@dataclass(frozen=True, slots=True)
class Redirect:
    """A MOVED (``ask`` False) or ASK reply: ``slot`` is served by ``node``."""

    ask: bool
    slot: int
    node: Node


def redirect(reply: Any, asked: Node) -> Redirect | None:
    """The redirect ``reply`` carries, or None when it is not MOVED or ASK."""
    if type(reply) is not ErrorReply:
        return None
    parts = reply.message.split(" ")
    if parts[0] not in ("MOVED", "ASK"):
        return None
    if len(parts) != 3 or not parts[1].isdigit():
        raise RemoteProtocolError(f"Redis sent a redirect we cannot read: {reply.message!r}")
    return Redirect(parts[0] == "ASK", int(parts[1]), node_at(parts[2], asked))


def step_slot(step: Command[Any] | Batch) -> int | None:
    """The one slot of the keys ``step`` touches, None when it touches none.

    Raises:
        LocalProtocolError: its keys are in several slots (a command or a
            transaction must not be split; a bug, not a setting).
    """
    slots = {key_slot(k) for k in step.keys}
    if len(slots) > 1:
        raise LocalProtocolError(f"{_name(step)} touches keys of several cluster slots")
    return slots.pop() if slots else None


def _name(step: Command[Any] | Batch) -> str:
    if type(step) is Batch:
        return "a transaction" if step.transaction else "a batch"
    return step.name  # type: ignore[union-attr]


@dataclass(frozen=True, slots=True)
class Part:
    """The share of a round trip one node gets: ``step``, and where each of
    its replies goes in the whole reply (``at``)."""

    node: Node
    step: Command[Any] | Batch
    at: tuple[int, ...]


def route(step: Command[Any] | Batch, slots: SlotMap, default: Node) -> list[Part]:
    """Where ``step`` goes: one part per node, in order of first command.

    A command or a transaction goes whole to its slot's node; a plain batch
    is split by node (a node's part keeps the batch's order). Keyless
    commands, and slots no node serves, go to ``default`` (which answers
    with a redirect, or CLUSTERDOWN, which the flows retry).
    """
    if type(step) is not Batch or step.transaction:
        slot = step_slot(step)
        node = default if slot is None else (slots.owner(slot) or default)
        return [Part(node, step, (0,))]
    by_node: dict[Node, list[int]] = {}
    for i, cmd in enumerate(step.commands):
        slot = step_slot(cmd)
        node = default if slot is None else (slots.owner(slot) or default)
        by_node.setdefault(node, []).append(i)
    if len(by_node) == 1:
        ((node, _),) = by_node.items()
        return [Part(node, step, tuple(range(len(step.commands))))]
    return [Part(node, batch_of(step.commands, at), tuple(at)) for node, at in by_node.items()]


def batch_of(commands: Sequence[Command[Any]], at: Sequence[int]) -> Command[Any] | Batch:
    """The commands at positions ``at`` as one round trip (a lone one bare)."""
    return commands[at[0]] if len(at) == 1 else Batch(tuple(commands[i] for i in at))


def part_replies(part: Part, raw: Any) -> list[Any]:
    """A part's raw reply as one reply per position of ``part.at``."""
    if type(part.step) is Batch and not part.step.transaction:
        if not isinstance(raw, Sequence) or len(raw) != len(part.at):
            raise RemoteProtocolError("batch reply does not match its commands")
        return list(raw)
    return [raw]


def merge(step: Command[Any] | Batch, replies: Sequence[Any]) -> Any:
    """The raw reply of ``step`` from one reply per position (see :func:`route`)."""
    if type(step) is Batch and not step.transaction:
        return list(replies)
    return replies[0]


@dataclass(slots=True)
class Refresh:
    """When a topology reads the slot map again (the clock is passed in).

    A MOVED reply or a lost node makes a refresh due; it runs at most once
    per :data:`REFRESH_INTERVAL`, however many callers notice. The first
    map is always due.
    """

    due: bool = True
    last: float | None = None

    def stale(self) -> None:
        """Something showed the map is out of date."""
        self.due = True

    def wanted(self, now: float) -> bool:
        """Whether to refresh now."""
        return self.due and (self.last is None or now - self.last >= REFRESH_INTERVAL)

    def done(self, now: float) -> None:
        """A refresh ran (whatever it found)."""
        self.due, self.last = False, now


def first_redirect(replies: Sequence[Any], asked_node: Node) -> Redirect | None:
    """The first redirect among ``replies``, or None. For a transaction it is
    the transaction's: Redis refuses to queue a command of a slot it does
    not serve, so MULTI answers every command with it."""
    for reply in replies:
        found = redirect(reply, asked_node)
        if found is not None:
            return found
    return None
