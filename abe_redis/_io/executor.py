"""Runs round trips: what a driver awaits.

:class:`Wire` runs a command or a batch on the pool its topology picks,
and a :class:`Race` as concurrent round trips, one connection each.
Errors reach it already mapped to ours (the connection maps them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from .._core.commands import Command
from .._core.steps import NOT_RUN, Batch, Lost, Race, RoundTrip
from ..errors import AbeRedisError, TransportError
from .connection import Connection
from .pool import Pool
from .topology import Topology


class Executor(Protocol):
    """Runs one round trip and returns its raw reply (the wire, or the
    coalescer in front of it)."""

    async def execute(self, step: RoundTrip) -> Any: ...


@dataclass(slots=True)
class Ticket:
    """A round trip sent ahead: the connection holding its reply, or (for a
    round trip split across cluster nodes) the reply itself."""

    step: Command[Any] | Batch
    pool: Pool | None
    conn: Connection | None
    open: bool = True
    reply: Any = None


class Wire:
    """The executor on real connections; see the module docstring."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.target = topology.target

    async def execute(self, step: RoundTrip) -> Any:
        """The raw reply of ``step`` (for a race, each member's, or NOT_RUN)."""
        if type(step) is Race:
            return await self._race(step)
        return await self.topology.round_trip(step)  # type: ignore[arg-type]

    async def send(self, step: Command[Any] | Batch) -> Ticket:
        """Send ``step`` now on a connection of its own; its reply waits there.

        A round trip that goes to several cluster nodes (or before the slot
        map is known) runs to its end here instead.
        """
        pool = self.topology.pool_for(step)
        if pool is None:
            return Ticket(step, None, None, False, await self.topology.round_trip(step))
        conn = await pool.lend()
        try:
            await conn.send(step)
        except BaseException:
            pool.give_back(conn)
            raise
        return Ticket(step, pool, conn)

    async def receive(self, ticket: Ticket) -> Any:
        """The raw reply of a round trip sent ahead."""
        if ticket.pool is None or ticket.conn is None:
            return ticket.reply
        try:
            raw = await ticket.conn.receive(ticket.step)
        finally:
            ticket.open = False
            ticket.pool.give_back(ticket.conn)
        return await self.topology.settled(ticket.step, ticket.pool, raw)

    async def abandon(self, ticket: Ticket) -> None:
        """Give up on a reply still due; its connection is closed."""
        if ticket.open and ticket.pool is not None and ticket.conn is not None:
            ticket.open = False
            await ticket.conn.abandon()
            ticket.pool.give_back(ticket.conn)

    async def _race(self, race: Race) -> list[Any]:
        """Run every member at once; stop the rest when one brings something.

        A member called off mid-read has its connection closed (every
        interrupted round trip does), so Redis drops the blocked read
        instead of serving it later to a reply nobody reads. The caller
        re-reads its pending entries of the streams called off (NOT_RUN),
        which covers reads Redis served before the close. A member whose
        round trip failed is :class:`Lost` (its node is down; the others wait
        on); when every member failed, the first error is raised. Any other
        error stops the race and is raised.
        """
        replies: list[Any] = [NOT_RUN] * len(race.commands)
        failure: list[AbeRedisError] = []
        async with anyio.create_task_group() as tg:

            async def member(i: int) -> None:
                try:
                    replies[i] = await self.execute(race.commands[i])
                except TransportError as exc:
                    replies[i] = Lost(exc)
                    return
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
        if all(type(r) is Lost for r in replies):
            raise replies[0].error
        return replies

    async def aclose(self) -> None:
        """Close every connection."""
        await self.topology.aclose()
