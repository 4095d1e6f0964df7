"""Where a round trip goes: the one point where topology plugs in.

The executor asks its :class:`Topology` for the pool that serves a round
trip, giving the round trip itself, whose commands declare their keys. A
single server has one pool for everything (:class:`SingleNode`);
:func:`open_topology` picks the topology from the settings. A Sentinel
topology would resolve the master's address here and re-resolve after a
failover; a cluster topology would map each key's slot (see
:mod:`abe_redis._core.slots`) to the pool of the node owning it, and
follow MOVED and ASK. Neither the core nor the facades change for that.
"""

from __future__ import annotations

from typing import Any, Protocol

from .._core.commands import Command
from .._core.steps import Batch
from ..config import Settings
from .address import address
from .pool import Pool


def open_topology(settings: Settings, *, limit: int | None = None) -> Topology:
    """The topology ``settings`` describe, with at most ``limit`` connections per
    server (default ``settings.max_connections``). Everything that connects
    (the backends, the lease keeper) gets its topology here."""
    return SingleNode.from_settings(settings, limit=limit)


class Topology(Protocol):
    """Places round trips on pools; ``target`` names the deployment (no secrets)."""

    target: str

    def pool_for(self, step: Command[Any] | Batch) -> Pool: ...

    async def aclose(self) -> None: ...


class SingleNode:
    """One server: every round trip goes to its pool."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.target = pool.address.target

    @classmethod
    def from_settings(cls, settings: Settings, *, limit: int | None = None) -> SingleNode:
        """The server ``settings`` name, with at most ``limit`` connections
        (default ``settings.max_connections``)."""
        pool = Pool(
            address(settings),
            limit=settings.max_connections if limit is None else limit,
            timeout=settings.socket_timeout,
            blocking_timeout=settings.read_timeout,
        )
        return cls(pool)

    def pool_for(self, step: Command[Any] | Batch) -> Pool:
        """The one pool."""
        return self.pool

    async def aclose(self) -> None:
        """Close every connection."""
        await self.pool.aclose()
