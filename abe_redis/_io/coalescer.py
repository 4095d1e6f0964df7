"""Auto-pipelining: concurrent flows share round trips.

Each caller drives its own flow (so each gets its own result or error),
with the coalescer as its executor: instead of sending a command, it
queues it. Whoever finds no round trip in flight becomes the flusher: it
sends everything queued as one batch, hands each caller its reply, and
hands over; a caller still waiting flushes the next batch. So N concurrent
publishes cost about one round trip per wave, on one connection, however
large N is. There is no background task: the flusher is one of the
callers.

Rules it keeps, whatever happens to the flusher:

* Every request in a batch that was sent hears its reply or an error, even
  when the flusher is cancelled or interrupted mid-send (a batch carrying
  other callers' commands is also shielded from the flusher's own
  cancellation).
* A caller cancelled while its request is still queued takes it out: a
  cancelled command is never sent later.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import anyio
import anyio.lowlevel

from .._core.batching import Request, fail, merged, settle, shareable, take_batch
from .._core.steps import RoundTrip
from ..errors import LocalProtocolError
from .executor import Executor


class Coalescer:
    """Executes round trips for many callers, merging them into shared batches."""

    def __init__(self, executor: Executor, max_batch: int = 1000) -> None:
        self._executor = executor
        self._queue: deque[Request] = deque()
        self._flushing = False
        self._idle: anyio.Event | None = None
        self._last_batch = 0
        self.max_batch = max_batch
        self.round_trips = 0

    async def execute(self, step: RoundTrip) -> Any:
        """Run ``step`` in the next shared batch; its raw reply, or its error raised."""
        if not shareable(step):
            return await self._executor.execute(step)  # alone, never merged
        if not self._flushing and not self._queue and self._last_batch <= 1:
            # A lone caller (sequential publishing): its round trip goes as
            # is; whoever queues meanwhile flushes after it.
            self._flushing = True
            self.round_trips += 1
            self._last_batch = 1
            try:
                return await self._executor.execute(step)
            finally:
                self._hand_over()
        request = Request(step)  # type: ignore[arg-type]
        self._queue.append(request)
        try:
            while not request.done:
                if self._flushing:
                    # One event per flush, shared by everyone waiting on it.
                    if self._idle is None:
                        self._idle = anyio.Event()
                    await self._idle.wait()
                elif request.queued:
                    await self._flush()
                else:  # pragma: no cover - every sent request is settled or failed
                    raise LocalProtocolError("a request left the queue without an answer")
        except BaseException:
            if request.queued:
                request.queued = False
                self._queue.remove(request)
            raise
        return request.outcome()

    async def _flush(self) -> None:
        """Send one batch (ours, or the ones queued before it), then hand over:
        a waiter whose request is still queued flushes next."""
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
            self._hand_over()

    def _hand_over(self) -> None:
        """The round trip is over: wake whoever waits to flush next."""
        self._flushing = False
        idle, self._idle = self._idle, None
        if idle is not None:
            idle.set()

    async def _send(self, batch: list[Request]) -> None:
        self.round_trips += 1
        self._last_batch = len(batch)
        try:
            reply = await self._executor.execute(merged(batch))
        except BaseException as exc:
            fail(batch, exc)
            if not isinstance(exc, Exception):
                raise  # the flusher's own cancellation goes on
        else:
            settle(batch, reply)
