"""Redis Sentinel on the one I/O stack: every round trip goes to the master
the sentinels name, found again after a failover.

:class:`Sentinel` is a :class:`~abe_redis._io.topology.Topology`; the rules
are the core's (:mod:`abe_redis._core.sentinel`). The master is looked up
before the first round trip, and again when a round trip to it fails or a
reply shows it is no longer the master (READONLY, a role change): by one
caller at a time (the others wait for it), at most once per
:data:`~abe_redis._core.cluster.REFRESH_INTERVAL`. A master that moved gets
a new pool; the old one is closed, so nothing is written to a demoted
server afterwards. It does not ask the sentinels again while every round
trip succeeds: after a ``SENTINEL FAILOVER`` the old master stays up until
it is demoted (11.5 s measured), and publishers and workers that stay on it
together until then lost nothing in our runs, while a periodic lookup (one
a second, tried) moved them at different moments and lost 0-3 events of
4,750 written to the old master meanwhile (``min-replicas-to-write`` is the
server's cure; see docs/deployment.md). Errors go on to the flows, which retry them as they do
on one server.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import anyio

from .._core.cluster import Node, Refresh
from .._core.commands import Command
from .._core.sentinel import Role, SentinelMaster, any_points_elsewhere
from .._core.steps import Batch
from ..config import SentinelTarget
from ..errors import AbeRedisError, ConnectError, TransportError
from .address import Address
from .pool import Pool

logger = logging.getLogger("abe_redis")


class Sentinel:
    """See the module docstring. ``master`` is how to talk to the master
    (credentials, db, name); its host and port come from the sentinels."""

    def __init__(
        self,
        target: SentinelTarget,
        sentinels: list[Address],
        master: Address,
        *,
        limit: int,
        timeout: float,
        blocking_timeout: float,
    ) -> None:
        self.service = target.service
        self.target = master.target
        self._master_address = master
        self._limit = limit
        self._timeout = timeout
        self._blocking_timeout = blocking_timeout
        self._sentinels = [
            Pool(a, limit=2, timeout=timeout, blocking_timeout=timeout) for a in sentinels
        ]
        self.master: Node | None = None
        self.pool: Pool | None = None
        self.refresh = Refresh()
        self._looking: anyio.Event | None = None
        self.failovers = 0

    # -- the Topology interface --------------------------------------------------

    def pool_for(self, step: Command[Any] | Batch) -> Pool | None:
        """The master's pool, once known and not in doubt."""
        if self.pool is None or self.refresh.due:
            return None
        return self.pool

    async def round_trip(self, step: Command[Any] | Batch) -> Any:
        """``step`` on the master (found first if need be)."""
        pool = await self._current()
        try:
            raw = await pool.round_trip(step)
        except TransportError:
            self.refresh.stale()
            raise
        return await self.settled(step, pool, raw)

    async def settled(self, step: Command[Any] | Batch, pool: Pool, raw: Any) -> Any:
        """``raw`` as it is; a reply from a server that is no longer the
        master makes the next round trip look again."""
        if any_points_elsewhere(raw):
            self.refresh.stale()
        return raw

    async def aclose(self) -> None:
        """Close the connections to the master and to the sentinels."""
        with anyio.CancelScope(shield=True):
            if self.pool is not None:
                await self.pool.aclose()
            for pool in self._sentinels:
                await pool.aclose()

    # -- finding the master ------------------------------------------------------

    async def _current(self) -> Pool:
        while True:
            if self.pool is not None and not self.refresh.wanted(time.monotonic()):
                return self.pool
            if self._looking is None:
                break
            await self._looking.wait()
        self._looking = anyio.Event()
        try:
            return await self._look()
        finally:
            self._looking.set()
            self._looking = None

    async def _look(self) -> Pool:
        error: AbeRedisError | None = None
        try:
            for sentinel in self._sentinels:
                try:
                    found = SentinelMaster(self.service).parse_reply(
                        await sentinel.round_trip(SentinelMaster(self.service))
                    )
                except AbeRedisError as exc:
                    error = exc
                    continue
                if found is None:
                    continue
                pool = self.pool if found == self.master and self.pool else self._new_pool(found)
                try:
                    role = Role().parse_reply(await pool.round_trip(Role()))
                except AbeRedisError as exc:
                    error = exc
                    role = ""
                if role != "master":
                    # The sentinel lags behind a failover, or the master just
                    # went down: ask the next one.
                    if pool is not self.pool:
                        await pool.aclose()
                    continue
                await self._use(found, pool)
                return pool
        finally:
            self.refresh.done(time.monotonic())
        if error is None or not isinstance(error, TransportError):
            error = ConnectError(
                f"no sentinel named a reachable master for {self.service!r}"
                + (f" ({error})" if error is not None else "")
            )
        raise error

    async def _use(self, node: Node, pool: Pool) -> None:
        if node == self.master:
            return
        old, self.pool, self.master = self.pool, pool, node
        if old is not None:
            self.failovers += 1
            logger.warning("the master of %r is now %s (after a failover)", self.service, node)
            await old.aclose()  # nothing more goes to the demoted server

    def _new_pool(self, node: Node) -> Pool:
        address = dataclasses.replace(
            self._master_address,
            host=node.host,
            port=node.port,
            tls_hostname=node.host if self._master_address.tls is not None else None,
            target=f"master {node} of {self.target}",
        )
        return Pool(
            address,
            limit=self._limit,
            timeout=self._timeout,
            blocking_timeout=self._blocking_timeout,
        )
