"""Auto-pipelining rules, shared by the async and the thread coalescers.

Callers queue requests; a flusher takes a batch of them (at most
``max_batch`` commands, counting a pipeline's members), sends it as one
command or one merged pipeline, and hands every caller its own slice of the
replies, or the error. The coalescers only add how callers wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import AbeRedisError, TransportError
from .commands import Command, Pipeline


@dataclass(slots=True)
class Request:
    """One caller's command, and its outcome once ``done``."""

    command: Command[Any]
    done: bool = False
    reply: Any = None
    error: AbeRedisError | None = None

    def outcome(self) -> Any:
        """The raw reply, or the error raised."""
        if self.error is not None:
            raise self.error
        return self.reply


def shareable(cmd: Command[Any]) -> bool:
    """A MULTI cannot share a pipeline with other callers' commands."""
    return not (isinstance(cmd, Pipeline) and cmd.transaction)


def width(cmd: Command[Any]) -> int:
    """How many commands ``cmd`` puts on the wire."""
    return len(cmd.commands) if isinstance(cmd, Pipeline) else 1


def take_batch(queue: list[Request], max_batch: int) -> list[Request]:
    """Remove and return the oldest requests that fit in one round trip (at least one)."""
    batch: list[Request] = []
    total = 0
    while queue and (not batch or total + width(queue[0].command) <= max_batch):
        request = queue.pop(0)
        batch.append(request)
        total += width(request.command)
    return batch


def merged(batch: list[Request]) -> Command[Any]:
    """The one command that carries the whole batch."""
    if len(batch) == 1:
        return batch[0].command
    flat: list[Command[Any]] = []
    for request in batch:
        cmd = request.command
        flat.extend(cmd.commands if isinstance(cmd, Pipeline) else (cmd,))
    return Pipeline(tuple(flat))


def settle(batch: list[Request], reply: Any) -> None:
    """Hand each request its part of the reply to :func:`merged`."""
    if len(batch) == 1:
        batch[0].reply, batch[0].done = reply, True
        return
    at = 0
    for request in batch:
        n = width(request.command)
        chunk = reply[at : at + n]
        request.reply = chunk if isinstance(request.command, Pipeline) else chunk[0]
        request.done = True
        at += n


def fail(batch: list[Request], exc: BaseException) -> None:
    """Every request of the batch hears of the error; none is left waiting."""
    if isinstance(exc, AbeRedisError):
        error = exc
    else:
        error = TransportError(f"pipeline failed: {type(exc).__name__}: {exc}")
        error.__cause__ = exc
    for request in batch:
        request.error, request.done = error, True
