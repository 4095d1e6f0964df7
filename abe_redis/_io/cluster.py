"""Redis Cluster on the one I/O stack: a pool per node, and the core's rules
(:mod:`abe_redis._core.cluster`) followed.

:class:`Cluster` is a :class:`~abe_redis._io.topology.Topology`. Before its
first round trip it asks the server it was given for ``CLUSTER SLOTS``.
With ``REDIS_CLUSTER=auto`` a server without cluster mode makes it a single
node for good: every round trip goes to that server's pool, as
:class:`~abe_redis._io.topology.SingleNode` does. Otherwise each round trip
is routed by its keys' slots (a plain batch split by node, the parts sent at
once, their replies put back in order), and MOVED and ASK replies are
followed before the reply reaches the core: at most
:data:`~abe_redis._core.cluster.MAX_REDIRECTS` per command and round trip,
after which the redirect reaches the command as a retryable error.

The slot map is read again when a MOVED reply or a lost node shows it is
stale, by one caller at a time (the others go on with the old map) and at
most once per :data:`~abe_redis._core.cluster.REFRESH_INTERVAL`. It is asked
of the known primaries in turn, then of the server first given.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

import anyio

from .._core.cluster import (
    MAX_REDIRECTS,
    ClusterSlots,
    Node,
    Part,
    Redirect,
    Refresh,
    SlotMap,
    batch_of,
    first_redirect,
    is_not_a_cluster,
    merge,
    part_replies,
    redirect,
    route,
)
from .._core.commands import Command
from .._core.replies import ErrorKind, ErrorReply
from .._core.steps import Batch, Lost
from ..errors import AbeRedisError, CommandError, ConfigError, ServerBusy, TransportError
from .address import Address
from .pool import Pool

logger = logging.getLogger("abe_redis")


class Cluster:
    """See the module docstring; ``required`` is ``REDIS_CLUSTER=true``."""

    def __init__(
        self,
        seed: Address,
        *,
        limit: int,
        timeout: float,
        blocking_timeout: float,
        required: bool = False,
    ) -> None:
        self.seed = seed
        self.target = seed.target
        self.required = required
        self._limit = limit
        self._timeout = timeout
        self._blocking_timeout = blocking_timeout
        self._seed_node = Node(seed.host, seed.port)
        self.seed_pool = self._new_pool(seed)
        self.pools: dict[Node, Pool] = {self._seed_node: self.seed_pool}
        self.single: bool | None = None
        """True: not a cluster (auto mode); None: not known yet."""
        self._sure = True
        """False while ``single`` is a guess (the server did not answer CLUSTER SLOTS)."""
        self._redirected = False
        """A guessed single server redirected: it is a cluster node."""
        self.slots: SlotMap | None = None
        self.refresh = Refresh()
        self._refreshing: anyio.Event | None = None
        self._down: dict[Node, float] = {}
        self.refreshes = 0

    def _new_pool(self, address: Address) -> Pool:
        return Pool(
            address,
            limit=self._limit,
            timeout=self._timeout,
            blocking_timeout=self._blocking_timeout,
        )

    def _pool(self, node: Node) -> Pool:
        pool = self.pools.get(node)
        if pool is None:
            address = dataclasses.replace(
                self.seed,
                host=node.host,
                port=node.port,
                tls_hostname=node.host if self.seed.tls is not None else None,
                target=f"cluster node {node} of {self.target}",
            )
            pool = self.pools[node] = self._new_pool(address)
        return pool

    @property
    def _default(self) -> Node:
        """Where keyless commands go: the first primary (or the seed)."""
        if self.slots is not None and self.slots.ranges:
            return self.slots.ranges[0].primary
        return self._seed_node

    # -- the Topology interface ------------------------------------------------

    def pool_for(self, step: Command[Any] | Batch) -> Pool | None:
        """The one pool ``step`` goes to, or None when it is split or the map
        is not known yet (then :meth:`round_trip` runs it)."""
        if self.single:
            return self.seed_pool
        if self.slots is None:
            return None
        parts = route(step, self.slots, self._default)
        return self._pool(parts[0].node) if len(parts) == 1 else None

    async def round_trip(self, step: Command[Any] | Batch) -> Any:
        """The raw reply of ``step``, routed and with redirects followed."""
        if not self.single:
            await self._current_map()
        if self.single:
            node = self._seed_node
            raw = await self.seed_pool.round_trip(step)
            if not self._sure and first_redirect(raw if type(raw) is list else [raw], node):
                # Taken for one server without its word for it, and it
                # redirects: a cluster after all. Ask again next time (this
                # reply is retried as a redirect not followed).
                self.single, self._redirected = None, True
            return raw
        assert self.slots is not None
        parts = route(step, self.slots, self._default)
        if len(parts) == 1:
            (part,) = parts
            raw = await self._on(part.node, part.step)
            return await self.settled(step, self._pool(part.node), raw)
        assert type(step) is Batch  # only a plain batch is split
        replies: list[Any] = [None] * len(step.commands)
        await self._parts(parts, replies)
        merged = await self._follow(step, replies, parts)
        if all(type(r) is Lost for r in merged):
            raise merged[0].error
        return merged

    async def settled(self, step: Command[Any] | Batch, pool: Pool, raw: Any) -> Any:
        """``raw``, the reply of ``step`` sent whole to ``pool``, with its
        redirects followed."""
        if self.single:
            return raw
        node = Node(pool.address.host, pool.address.port)
        plain = type(step) is Batch and not step.transaction
        part = Part(node, step, tuple(range(len(step.commands))) if plain else (0,))  # type: ignore[union-attr]
        replies = part_replies(part, raw)
        if not any(type(r) is ErrorReply for r in replies):
            return raw
        return await self._follow(step, replies, [part])

    async def aclose(self) -> None:
        """Close every connection to every node (shielded, as :meth:`Pool.aclose`)."""
        with anyio.CancelScope(shield=True):
            for pool in list(self.pools.values()):
                await pool.aclose()

    # -- routing -------------------------------------------------------------------

    async def _on(self, node: Node, step: Command[Any] | Batch, asking: bool = False) -> Any:
        try:
            raw = await self._pool(node).round_trip(step, asking=asking)
        except TransportError as exc:
            self.refresh.stale()  # the node may be gone: a failover
            if node not in self._down:
                self._down[node] = _now()
                logger.warning("cluster node %s does not answer (%s)", node, exc)
            raise
        if self._down:
            since = self._down.pop(node, None)
            if since is not None:
                logger.warning("cluster node %s answering again after %.1f s", node, _now() - since)
        return raw

    async def _parts(self, parts: Sequence[Part], replies: list[Any], asking: bool = False) -> None:
        """Send every part at once and put each reply in its place.

        Every part runs to its end even when another fails: the replies of
        the nodes that answered are kept, and a part whose round trip failed
        gets :class:`Lost` in its places (its node is down; what the others
        did stands). Errors other than transport errors are raised.
        """
        failure: list[AbeRedisError] = []

        async def one(part: Part) -> None:
            try:
                raw = await self._on(part.node, part.step, asking)
            except TransportError as exc:
                for at in part.at:
                    replies[at] = Lost(exc)
                return
            except AbeRedisError as exc:
                failure.append(exc)
                return
            for at, reply in zip(part.at, part_replies(part, raw), strict=True):
                replies[at] = reply

        async with anyio.create_task_group() as tg:
            for part in parts:
                tg.start_soon(one, part)
        if failure:
            raise failure[0]

    async def _follow(
        self, step: Command[Any] | Batch, replies: list[Any], parts: Sequence[Part]
    ) -> Any:
        """Follow the MOVED and ASK replies among ``replies`` (``parts`` say
        where each was sent), then the merged raw reply of ``step``."""
        if type(step) is Batch and not step.transaction:
            await self._follow_each(step.commands, replies, parts)
            return merge(step, replies)
        # A command or a transaction (one part) goes again whole.
        node = parts[0].node
        for _ in range(MAX_REDIRECTS):
            found = first_redirect(replies, node)
            if found is None:
                break
            self._learn(found)
            node = found.node
            raw = await self._on(node, step, found.ask)
            replies = part_replies(Part(node, step, parts[0].at), raw)
        return merge(step, replies)

    async def _follow_each(
        self, commands: Sequence[Command[Any]], replies: list[Any], parts: Sequence[Part]
    ) -> None:
        """A plain batch: each redirected command again, where it was sent
        (MOVED ones to the same node together, ASK ones each after ASKING)."""
        where = {at: part.node for part in parts for at in part.at}
        for _ in range(MAX_REDIRECTS):
            found: dict[int, Redirect] = {}
            for at, reply in enumerate(replies):
                r = redirect(reply, where[at])
                if r is not None:
                    found[at] = r
            if not found:
                return
            moved: dict[Node, list[int]] = {}
            ask: list[Part] = []
            for at, r in found.items():
                self._learn(r)
                where[at] = r.node
                if r.ask:
                    ask.append(Part(r.node, commands[at], (at,)))
                else:
                    moved.setdefault(r.node, []).append(at)
            again = [Part(node, batch_of(commands, at), tuple(at)) for node, at in moved.items()]
            async with anyio.create_task_group() as tg:
                if again:
                    tg.start_soon(self._parts, again, replies)
                if ask:
                    tg.start_soon(self._parts, ask, replies, True)

    def _learn(self, found: Redirect) -> None:
        if not found.ask and self.slots is not None:
            self.slots = self.slots.moved(found.slot, found.node)
            self.refresh.stale()

    # -- the slot map -------------------------------------------------------------

    async def _current_map(self) -> None:
        """Make sure a map is known (reading it first if not), and refresh a
        stale one if no other caller is doing so."""
        while True:
            if self.single or (self.slots is not None and not self.refresh.wanted(_now())):
                return
            if self._refreshing is None:
                break
            if self.slots is not None:
                return  # someone is refreshing; the old map serves meanwhile
            await self._refreshing.wait()
        self._refreshing = anyio.Event()
        try:
            await self._read_map()
        finally:
            self._refreshing.set()
            self._refreshing = None

    async def _read_map(self) -> None:
        known = self.slots.primaries if self.slots is not None else ()
        candidates = list(dict.fromkeys((*known, self._seed_node)))
        error: AbeRedisError | None = None
        for node in candidates:
            cmd = ClusterSlots(node)
            try:
                raw = await self._pool(node).round_trip(cmd)
            except TransportError as exc:
                if self.slots is None and not self.required and not isinstance(exc, ServerBusy):
                    # First contact failed (down, or a proxy that drops the
                    # connection on CLUSTER): go on as one server, whose own
                    # round trip says what is wrong; a redirect later asks again.
                    logger.debug("could not ask %s for CLUSTER SLOTS: %s", self.target, exc)
                    self.single, self._sure = True, False
                    return
                error = exc
                continue
            if type(raw) is ErrorReply and self.slots is None and is_not_a_cluster(raw):
                self._not_a_cluster(raw)
                return
            if type(raw) is ErrorReply and self.slots is None and raw.kind is ErrorKind.REFUSED:
                if self.required or self._redirected:
                    # A cluster (it redirected) whose map we may not read:
                    # a setting to fix, not something to retry.
                    raise ClusterSlots(node).fail(raw)
                # An ACL without `cluster|slots`: most likely one server.
                logger.warning(
                    "Redis at %s refused CLUSTER SLOTS (%s); taken as a single server. "
                    "On a cluster, allow +cluster|slots",
                    self.target,
                    raw.message,
                )
                self.single, self._sure = True, False
                return
            try:
                slots = cmd.parse_reply(raw)
            except CommandError as exc:  # CLUSTERDOWN and the like: ask another
                error = exc
                continue
            self.refresh.done(_now())
            self.refreshes += 1
            if self.slots is None:
                logger.info(
                    "Redis at %s is a cluster of %d primaries", self.target, len(slots.primaries)
                )
            self.slots = slots
            return
        self.refresh.done(_now())
        assert error is not None
        raise error

    def _not_a_cluster(self, reply: ErrorReply) -> None:
        if self.required:
            raise ConfigError(
                f"REDIS_CLUSTER is true but Redis at {self.target} is not a cluster node "
                f"({reply.message})"
            )
        self.single = True


def _now() -> float:
    return time.monotonic()
