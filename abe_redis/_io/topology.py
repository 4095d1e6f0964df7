"""Where a round trip goes: the one point where topology plugs in.

The executor hands its :class:`Topology` each round trip, whose commands
declare their keys. A single server has one pool for everything
(:class:`SingleNode`); a cluster (:class:`~abe_redis._io.cluster.Cluster`)
maps each key's slot to the pool of the node serving it and follows MOVED
and ASK; a Sentinel deployment (:class:`~abe_redis._io.sentinel.Sentinel`)
sends everything to the master the sentinels name, and looks again after a
failover. :func:`open_topology` picks the topology from the settings.
Neither the core nor the facades change for any of them.
"""

from __future__ import annotations

from typing import Any, Protocol

from .._core.commands import Command
from .._core.steps import Batch
from ..config import SentinelTarget, Settings
from .address import Address, address, tls_context
from .cluster import Cluster
from .pool import Pool
from .sentinel import Sentinel


def open_topology(settings: Settings, *, limit: int | None = None) -> Topology:
    """The topology ``settings`` describe, with at most ``limit`` connections per
    server (default ``settings.max_connections``). Everything that connects
    (the backends, the lease keeper) gets its topology here.

    A ``redis+sentinel://`` URL is a Sentinel deployment. Otherwise
    ``REDIS_CLUSTER`` decides: ``false`` (and any ``unix://`` URL) is a
    single node; ``auto`` asks the server whether it is a cluster node;
    ``true`` requires it to be one.
    """
    limit = settings.max_connections if limit is None else limit
    sentinel = settings.sentinel
    if sentinel is not None:
        return _sentinel(settings, sentinel, limit)
    seed = address(settings)
    if settings.cluster == "false" or seed.path is not None:
        return SingleNode(_pool(seed, settings, limit))
    return Cluster(
        seed,
        limit=limit,
        timeout=settings.socket_timeout,
        blocking_timeout=settings.read_timeout,
        required=settings.cluster == "true",
    )


def _sentinel(settings: Settings, target: SentinelTarget, limit: int) -> Sentinel:
    """The topology of a ``redis+sentinel://`` URL: its sentinels (with
    ``REDIS_SENTINEL_PASSWORD``) and how to talk to the master they name."""
    # REDIS_SSL: TLS to the sentinels and the master alike, as Redis' own
    # tls-replication setting has it between them.
    tls = tls_context(settings, {}) if settings.ssl else None
    sentinels = [
        Address(
            host=host,
            port=port,
            tls=tls,
            tls_hostname=host if tls is not None else None,
            password=settings.sentinel_password,
            client_name=settings.client_name,
            target=f"sentinel {host}:{port}",
        )
        for host, port in target.sentinels
    ]
    master = Address(
        tls=tls,
        username=target.username,
        password=target.password or settings.password,
        db=target.db,
        protocol=settings.protocol,
        client_name=settings.client_name,
        target=settings.redacted_url,
    )
    return Sentinel(
        target,
        sentinels,
        master,
        limit=limit,
        timeout=settings.socket_timeout,
        blocking_timeout=settings.read_timeout,
    )


def _pool(seed: Address, settings: Settings, limit: int) -> Pool:
    return Pool(
        seed, limit=limit, timeout=settings.socket_timeout, blocking_timeout=settings.read_timeout
    )


class Topology(Protocol):
    """Places round trips on pools; ``target`` names the deployment (no secrets)."""

    target: str

    def pool_for(self, step: Command[Any] | Batch) -> Pool | None:
        """The one pool ``step`` goes to whole, or None when only
        :meth:`round_trip` can run it (it is split across nodes)."""

    async def round_trip(self, step: Command[Any] | Batch) -> Any:
        """The raw reply of ``step``, wherever it has to go."""

    async def settled(self, step: Command[Any] | Batch, pool: Pool, raw: Any) -> Any:
        """``raw``, the reply of ``step`` sent whole to ``pool``, once
        whatever it says about the topology (a redirect) is dealt with."""

    async def aclose(self) -> None:
        """Close every connection."""


class SingleNode:
    """One server: every round trip goes to its pool."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.target = pool.address.target

    @classmethod
    def from_settings(cls, settings: Settings, *, limit: int | None = None) -> SingleNode:
        """The server ``settings`` name, with at most ``limit`` connections
        (default ``settings.max_connections``)."""
        limit = settings.max_connections if limit is None else limit
        return cls(_pool(address(settings), settings, limit))

    def pool_for(self, step: Command[Any] | Batch) -> Pool:
        """The one pool."""
        return self.pool

    async def round_trip(self, step: Command[Any] | Batch) -> Any:
        """``step`` on the one pool."""
        return await self.pool.round_trip(step)

    async def settled(self, step: Command[Any] | Batch, pool: Pool, raw: Any) -> Any:
        """``raw`` as it is: one server redirects nowhere."""
        return raw

    async def aclose(self) -> None:
        """Close every connection."""
        await self.pool.aclose()


def topology_kind(topology: Topology) -> str:
    """``single``, ``cluster`` or ``sentinel``: what the settings led to."""
    if isinstance(topology, Sentinel):
        return "sentinel"
    if isinstance(topology, Cluster) and not topology.single:
        return "cluster"
    return "single"
