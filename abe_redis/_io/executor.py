"""Runs round trips: what a driver awaits.

:class:`Wire` runs a command or a batch on the pool its topology picks,
and a :class:`Race` as concurrent round trips, one connection each.
Errors reach it already mapped to ours (the connection maps them).
"""

from __future__ import annotations

from typing import Any, Protocol

import anyio

from .._core.steps import NOT_RUN, Race, RoundTrip
from ..errors import AbeRedisError
from .topology import Topology


class Executor(Protocol):
    """Runs one round trip and returns its raw reply (the wire, or the
    coalescer in front of it)."""

    async def execute(self, step: RoundTrip) -> Any: ...


class Wire:
    """The executor on real connections; see the module docstring."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.target = topology.target

    async def execute(self, step: RoundTrip) -> Any:
        """The raw reply of ``step`` (for a race, each member's, or NOT_RUN)."""
        if type(step) is Race:
            return await self._race(step)
        return await self.topology.pool_for(step).round_trip(step)  # type: ignore[arg-type]

    async def _race(self, race: Race) -> list[Any]:
        """Run every member at once; stop the rest when one brings something or fails.

        A member called off mid-read has its connection closed (every
        interrupted round trip does), so Redis drops the blocked read
        instead of serving it later to a reply nobody reads. The caller
        re-reads its pending entries of the streams called off (NOT_RUN),
        which covers reads Redis served before the close.
        """
        replies: list[Any] = [NOT_RUN] * len(race.commands)
        failure: list[AbeRedisError] = []
        async with anyio.create_task_group() as tg:

            async def member(i: int) -> None:
                try:
                    replies[i] = await self.execute(race.commands[i])
                except AbeRedisError as exc:
                    failure.append(exc)
                    tg.cancel_scope.cancel()
                    return
                if replies[i]:  # nil or empty means the BLOCK window passed
                    tg.cancel_scope.cancel()

            for i in range(len(race.commands)):
                tg.start_soon(member, i)
        if failure:
            raise failure[0]
        return replies

    async def aclose(self) -> None:
        """Close every connection."""
        await self.topology.aclose()
