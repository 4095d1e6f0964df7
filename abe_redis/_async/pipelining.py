"""Auto-pipelining: concurrent flows share round trips.

Each caller drives its own flow (so each gets its own result or error),
with the coalescer as its executor: instead of sending a command, it
queues it. Whoever finds no round trip in flight becomes the flusher: it
sends everything queued as one pipeline, hands each caller its reply, and
hands over; a caller still waiting flushes the next batch. So N concurrent
publishes cost about one round trip per wave, on one connection, however
large N is. There is no background task: the flusher is one of the
callers, and a flush carrying others' commands is shielded from its own
cancellation so they always get their answers.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel

from .._core.batching import Request, fail, merged, settle, shareable, take_batch
from .._core.commands import Command
from .driver import Executor


class Coalescer:
    """Executes commands for many callers, merging them into shared pipelines."""

    def __init__(self, executor: Executor, max_batch: int = 1000) -> None:
        # The backend's native pool (which sends MULTI on to the transport),
        # or the transport itself.
        self._executor = executor
        self._queue: list[Request] = []
        self._flushing = False
        self._idle: anyio.Event | None = None
        self._last_batch = 0
        self.max_batch = max_batch
        self.round_trips = 0

    async def execute(self, cmd: Command[Any]) -> Any:
        """Run ``cmd`` in the next shared pipeline; its raw reply, or its error raised.

        Drive flows with :func:`~abe_redis._async.driver.run_flow` over this.
        """
        request = Request(cmd)
        if not shareable(cmd):
            await self._send([request])  # alone, never merged with others
            return request.outcome()
        self._queue.append(request)
        while not request.done:
            if self._flushing:
                # One event per flush, shared by everyone waiting on it.
                if self._idle is None:
                    self._idle = anyio.Event()
                await self._idle.wait()
                continue
            # Flush one batch (ours, or the ones queued before it), then hand
            # over: a waiter whose request is still queued flushes next.
            self._flushing = True
            try:
                if self._last_batch > 1:
                    # Several callers just got their answers and are about to
                    # queue their next commands: let them, so the batch is full.
                    # (A lone caller never waits here.)
                    await anyio.lowlevel.cancel_shielded_checkpoint()
                batch = take_batch(self._queue, self.max_batch)
                if len(batch) == 1:
                    # Alone: nobody else depends on this round trip, so no
                    # shield is needed and cancellation stays prompt.
                    await self._send(batch)
                else:
                    with anyio.CancelScope(shield=True):
                        await self._send(batch)
            finally:
                self._flushing = False
                idle, self._idle = self._idle, None
                if idle is not None:
                    idle.set()
        return request.outcome()

    async def _send(self, batch: list[Request]) -> None:
        self.round_trips += 1
        self._last_batch = len(batch)
        try:
            reply = await self._executor.execute(merged(batch))
        except Exception as exc:
            fail(batch, exc)
        else:
            settle(batch, reply)
