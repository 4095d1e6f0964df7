"""Connections to one server, lent one per round trip.

A pool keeps what it lent for reuse and opens at most ``limit`` at once
(``REDIS_MAX_CONNECTIONS``); past that, callers wait for one to come back
instead of failing. Lending one per round trip (not per consumer) means a
consumer dropped without closing holds none. A connection whose round trip
failed has closed itself; it goes back to the pool and connects afresh on
its next use.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import anyio

from .._core.commands import Command
from .._core.steps import Batch
from .address import Address
from .connection import Connection


class Pool:
    """See the module docstring."""

    def __init__(
        self, address: Address, *, limit: int, timeout: float, blocking_timeout: float
    ) -> None:
        self.address = address
        self.limit = limit
        self._timeout = timeout
        self._blocking_timeout = blocking_timeout
        self._idle: list[Connection] = []
        self._all: list[Connection] = []
        self._waiting: deque[anyio.Event] = deque()

    @property
    def size(self) -> int:
        """How many connections the pool has made."""
        return len(self._all)

    async def round_trip(self, step: Command[Any] | Batch, *, asking: bool = False) -> Any:
        """Run ``step`` on an idle connection (a new one if none is idle and the
        limit allows; otherwise wait for one); ``asking`` as
        :meth:`Connection.round_trip`."""
        conn = self._idle.pop() if self._idle else await self._take()
        try:
            return await conn.round_trip(step, asking=asking)
        finally:
            self._give_back(conn)

    async def lend(self) -> Connection:
        """A connection for a round trip split in two (send now, receive later);
        hand it back with :meth:`give_back`."""
        return self._idle.pop() if self._idle else await self._take()

    def give_back(self, conn: Connection) -> None:
        """Return a lent connection (one that failed has closed itself)."""
        self._give_back(conn)

    async def _take(self) -> Connection:
        while not self._idle:
            if len(self._all) < self.limit:
                conn = Connection(self.address, self._timeout, self._blocking_timeout)
                self._all.append(conn)
                return conn
            event = anyio.Event()
            self._waiting.append(event)
            try:
                await event.wait()
            except BaseException:
                if event.is_set():
                    self._wake_next()  # pass on the connection we were woken for
                else:
                    self._waiting.remove(event)
                raise
        return self._idle.pop()

    def _give_back(self, conn: Connection) -> None:
        self._idle.append(conn)
        self._wake_next()

    def _wake_next(self) -> None:
        while self._waiting:
            event = self._waiting.popleft()
            if not event.is_set():
                event.set()
                break

    async def aclose(self) -> None:
        """Close every connection, even when the caller is being cancelled
        (each close is forceful and quick; a cancellation arriving after the
        first one must not leave the others open)."""
        with anyio.CancelScope(shield=True):
            for conn in self._all:
                await conn.aclose()
