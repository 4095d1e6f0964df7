"""What flows yield, and what a driver sends back.

A flow is a generator. It yields one step at a time:

* a :class:`~abe_redis._core.commands.Command`, a :class:`Batch` or a
  :class:`Race`: a round trip. The driver runs it and sends back
  ``Resume(raw_reply, now)``;
* :class:`Ahead` / :class:`Collect`: a round trip split in two, sent now
  and its reply fetched later;
* :class:`Within`: a round trip with a deadline;
* :class:`Sleep`: the driver waits, then sends ``Resume(None, now)``;
* for consumers, a :class:`~abe_redis._core.entries.Delivery`: the driver
  hands the payload to the application and sends ``Resume(None, now)`` when
  the application asks for the next one.

Transport errors are thrown into the flow at the yield point, which decides
whether to retry. A round trip cut short by cancellation is answered with
:class:`Interrupted` thrown in.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import RemoteProtocolError, TransportError, TransportTimeout
from .commands import Command
from .entries import Delivery
from .replies import ErrorReply

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Lost:
    """The raw reply of a command whose part of a round trip failed while the
    rest was answered: a plain batch (or a race) split across cluster nodes,
    one of them unreachable. Redis may or may not have run the command.

    :meth:`Batch.parse_reply` raises its ``error``; a flow that can use the
    rest of the replies reads them one by one instead (a consumer does).
    """

    error: TransportError


@dataclass(frozen=True, slots=True)
class Batch:
    """Several commands sent in one round trip; the raw reply has one reply per command.

    Without ``transaction`` each command stands alone (a router may send
    each to its own node); with it they run inside MULTI/EXEC, so they must
    share one cluster slot.
    """

    commands: tuple[Command[Any], ...]
    transaction: bool = False

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key the batch touches, in order, without repeats."""
        return tuple(dict.fromkeys(k for cmd in self.commands for k in cmd.keys))

    def parse_reply(self, raw: Any) -> tuple[Any, ...]:
        """Each command's value; the first error reply a command does not act on raises."""
        if not isinstance(raw, Sequence) or len(raw) != len(self.commands):
            raise RemoteProtocolError("batch reply does not match its commands")
        for r in raw:
            if type(r) is Lost:
                raise r.error
        if self.transaction:
            # A refused transaction: the command that caused it speaks first
            # (the others only say EXECABORT).
            for cmd, r in zip(self.commands, raw, strict=True):
                if type(r) is ErrorReply and r.code != "EXECABORT":
                    cmd.parse_reply(r)
        return tuple(cmd.parse_reply(r) for cmd, r in zip(self.commands, raw, strict=True))


@dataclass(frozen=True, slots=True)
class NotRun:
    """Placeholder reply of a :class:`Race` member that was called off."""


NOT_RUN = NotRun()


@dataclass(frozen=True, slots=True)
class Race:
    """Blocking reads run at once, each on a connection of its own, until one
    brings something (or all of them time out).

    Used to wait on several streams without one command touching several
    keys. The raw reply holds each member's reply, :data:`NOT_RUN` for
    those called off once one had answered, or :class:`Lost` for those whose
    round trip failed while others did not (all failing raises). A member
    called off or lost mid-read may still have been served by Redis, so the
    caller re-reads its own pending entries of those streams.
    """

    commands: tuple[Command[Any], ...]

    def parse_reply(self, raw: Any) -> tuple[Any, ...]:
        """Each member's value, or :data:`NOT_RUN`."""
        if not isinstance(raw, Sequence) or len(raw) != len(self.commands):
            raise RemoteProtocolError("race reply does not match its commands")
        return tuple(
            r if r is NOT_RUN or type(r) is Lost else cmd.parse_reply(r)
            for cmd, r in zip(self.commands, raw, strict=True)
        )


@dataclass(frozen=True, slots=True)
class Ahead:
    """Send this round trip now and go on; the driver answers with a ticket at once.

    Its reply is fetched later with :class:`Collect`, so Redis works on it
    while the flow does other things (a consumer hands out what it holds).
    """

    step: Command[Any] | Batch


@dataclass(frozen=True, slots=True)
class Collect:
    """The raw reply of a round trip sent :class:`Ahead` (waiting for it if need be)."""

    ticket: Any


@dataclass(frozen=True, slots=True)
class Within:
    """Run this round trip, but give up at ``deadline`` (the clock of
    :attr:`Resume.now`): the driver raises ``TransportTimeout`` then.

    What a publish's retry budget bounds every attempt with. A round trip
    that shares its batch with other callers' commands is not cut short
    (they depend on it); it is bounded by the socket timeout instead.
    """

    step: Command[Any] | Batch
    deadline: float


class DeadlinePassed(TransportTimeout):
    """Raised by a driver when a :class:`Within` step's deadline passed
    (a :class:`TransportTimeout` to callers)."""


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
    """Thrown into a flow when the round trip it yielded was cancelled mid-flight.

    Redis may or may not have run it; the flow decides how to recover.
    """


RoundTrip = Command[Any] | Batch | Race
"""What an executor runs."""

Step = RoundTrip | Ahead | Collect | Within | Sleep | Delivery
Flow = Generator[Step, Resume, T]


def once(cmd: Command[T]) -> Flow[T]:
    """The flow of a single command."""
    resume = yield cmd
    return cmd.parse_reply(resume.reply)


def run_batch(batch: Batch) -> Flow[tuple[Any, ...]]:
    """The flow of a single batch: each command's value."""
    resume = yield batch
    return batch.parse_reply(resume.reply)
