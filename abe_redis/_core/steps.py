"""What a flow yields besides commands, and what a driver sends back.

A flow is a generator. It yields a :class:`~abe_redis._core.commands.Command`
(the driver runs it and sends back ``Resume(raw_reply, now)``), a
:class:`Sleep` (the driver waits, then sends ``Resume(None, now)``) or, for
consumers, a :class:`~abe_redis._core.entries.Delivery` (the driver hands the
payload to the application and sends ``Resume(None, now)`` when the
application asks for the next one). Transport errors are thrown into the
flow at the yield point, which decides whether to retry.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from .commands import Command
from .entries import Delivery

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sleep:
    """Ask the driver to wait this many seconds."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Resume:
    """What a driver sends into a flow: the raw reply (or None) and the time."""

    reply: Any
    now: float


class Interrupted(Exception):
    """Thrown into a flow when the command it yielded was cancelled mid-flight.

    Redis may or may not have run it; the flow decides how to recover.
    """


@dataclass(frozen=True, slots=True)
class Finished:
    """A driver's note that a flow returned, with its value."""

    value: Any


Step = Command[Any] | Sleep | Delivery
Flow = Generator[Step, Resume, T]


def once(cmd: Command[T]) -> Flow[T]:
    """The flow of a single command."""
    resume = yield cmd
    return cmd.parse_reply(resume.reply)
