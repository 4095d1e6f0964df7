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

from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel

from .._core.commands import Command, Pipeline
from ..errors import AbeRedisError, TransportError
from .driver import Executor
from .transport import Transport


@dataclass(slots=True)
class _Request:
    command: Command[Any]
    done: bool = False
    reply: Any = None
    error: AbeRedisError | None = None


def _width(cmd: Command[Any]) -> int:
    return len(cmd.commands) if isinstance(cmd, Pipeline) else 1


class Coalescer:
    """Executes commands for many callers, merging them into shared pipelines."""

    def __init__(
        self, transport: Transport, max_batch: int = 1000, lane: Executor | None = None
    ) -> None:
        self._transport = transport
        # Shared batches go through ``lane`` (a dedicated connection) when
        # there is one; MULTI pipelines always go through the transport.
        self._lane: Executor = lane if lane is not None else transport
        self._queue: list[_Request] = []
        self._flushing = False
        self._idle: anyio.Event | None = None
        self._last_batch = 0
        self.max_batch = max_batch
        self.round_trips = 0

    async def execute(self, cmd: Command[Any]) -> Any:
        """Run ``cmd`` in the next shared pipeline; its raw reply, or its error raised.

        Drive flows with :func:`~abe_redis._async.driver.run_flow` over this.
        """
        request = await self._submit(cmd)
        if request.error is not None:
            raise request.error
        return request.reply

    async def _submit(self, command: Command[Any]) -> _Request:
        request = _Request(command)
        if isinstance(command, Pipeline) and command.transaction:
            # A MULTI cannot share a pipeline with other callers' commands.
            await self._send_alone(request)
            return request
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
                if len(self._queue) == 1:
                    # Alone: nobody else depends on this round trip, so no
                    # shield is needed and cancellation stays prompt.
                    await self._send_alone(self._queue.pop())
                else:
                    with anyio.CancelScope(shield=True):
                        await self._flush()
            finally:
                self._flushing = False
                idle, self._idle = self._idle, None
                if idle is not None:
                    idle.set()
        return request

    async def _send_alone(self, request: _Request) -> None:
        self.round_trips += 1
        self._last_batch = 1
        cmd = request.command
        executor = self._transport if isinstance(cmd, Pipeline) and cmd.transaction else self._lane
        try:
            request.reply = await executor.execute(cmd)
        except Exception as exc:
            request.error = _as_error(exc)
        request.done = True

    async def _flush(self) -> None:
        batch: list[_Request] = []
        width = 0
        while self._queue and (
            not batch or width + _width(self._queue[0].command) <= self.max_batch
        ):
            request = self._queue.pop(0)
            batch.append(request)
            width += _width(request.command)
        if len(batch) == 1:
            await self._send_alone(batch[0])
            return
        self._last_batch = len(batch)
        flat: list[Command[Any]] = []
        for request in batch:
            cmd = request.command
            flat.extend(cmd.commands if isinstance(cmd, Pipeline) else (cmd,))
        try:
            replies = await self._lane.execute(Pipeline(tuple(flat)))
        except Exception as exc:
            # Every caller in the batch hears of it; none is left waiting.
            for request in batch:
                request.error = _as_error(exc)
                request.done = True
            return
        finally:
            self.round_trips += 1
        at = 0
        for request in batch:
            n = _width(request.command)
            chunk = replies[at : at + n]
            request.reply = chunk if isinstance(request.command, Pipeline) else chunk[0]
            at += n
            request.done = True


def _as_error(exc: Exception) -> AbeRedisError:
    if isinstance(exc, AbeRedisError):
        return exc
    error = TransportError(f"pipeline failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
