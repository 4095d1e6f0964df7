"""Auto-pipelining rules: concurrent callers' round trips merged into one batch.

Callers queue requests; a flusher takes a batch of them (at most
``max_batch`` commands, counting a batch's members), sends it as one
command or one merged batch, and hands every caller its own slice of the
replies, or the error. The coalescer only adds how callers wait.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from ..errors import AbeRedisError, TransportError
from .commands import Command
from .steps import Batch, Lost, RoundTrip


@dataclass(slots=True)
class Request:
    """One caller's round trip, and its outcome once ``done``."""

    step: Command[Any] | Batch
    queued: bool = True
    done: bool = False
    reply: Any = None
    error: AbeRedisError | None = None

    def outcome(self) -> Any:
        """The raw reply, or the error raised."""
        if self.error is not None:
            raise self.error
        return self.reply


def shareable(step: RoundTrip) -> bool:
    """A MULTI or a race cannot share a round trip with other callers' commands."""
    if type(step) is Batch:
        return not step.transaction
    return isinstance(step, Command)


def width(step: Command[Any] | Batch) -> int:
    """How many commands ``step`` puts on the wire."""
    return len(step.commands) if type(step) is Batch else 1


def take_batch(queue: deque[Request], max_batch: int) -> list[Request]:
    """Remove and return the oldest requests that fit in one round trip (at
    least one, if any is queued)."""
    batch: list[Request] = []
    total = 0
    while queue and (not batch or total + width(queue[0].step) <= max_batch):
        request = queue.popleft()
        request.queued = False
        batch.append(request)
        total += width(request.step)
    return batch


def merged(batch: list[Request]) -> Command[Any] | Batch:
    """The one round trip that carries the whole batch."""
    if len(batch) == 1:
        return batch[0].step
    flat: list[Command[Any]] = []
    for request in batch:
        step = request.step
        if type(step) is Batch:
            flat.extend(step.commands)
        else:
            flat.append(step)  # type: ignore[arg-type]
    return Batch(tuple(flat))


def settle(batch: list[Request], reply: Any) -> None:
    """Hand each request its part of the reply to :func:`merged`."""
    if len(batch) == 1:
        batch[0].reply, batch[0].done = reply, True
        return
    at = 0
    for request in batch:
        n = width(request.step)
        chunk = reply[at : at + n]
        lost = next((r for r in chunk if type(r) is Lost), None)
        if lost is not None:
            # Its share went to a node that did not answer: as if its own
            # round trip had failed (the others' shares are answered).
            request.error = lost.error
        else:
            request.reply = chunk if type(request.step) is Batch else chunk[0]
        request.done = True
        at += n


def fail(batch: list[Request], exc: BaseException) -> None:
    """Every request of the batch hears of the error; none is left waiting.

    Anything but our own errors (cancellation of the flusher included)
    reaches the others as a :class:`TransportError`: their round trip may or
    may not have run, as when a connection is lost.
    """
    if isinstance(exc, AbeRedisError):
        error = exc
    else:
        error = TransportError(f"round trip cut short: {type(exc).__name__}: {exc}")
        error.__cause__ = exc
    for request in batch:
        request.error, request.done = error, True
