"""The one driver: advances a core flow by running its steps.

``await executor.execute(step)`` for round trips, ``anyio.sleep`` for
sleeps; a delivery goes back to the caller. Every face of the package
(asyncio, trio, the sync facade through its portal, the lease thread on its
own loop) runs flows through :class:`Driver` or :func:`run_flow`.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio

from .._core.entries import Delivery
from .._core.steps import (
    Ahead,
    Collect,
    DeadlinePassed,
    Flow,
    Interrupted,
    Resume,
    Sleep,
    Step,
    Within,
)
from ..errors import LocalProtocolError, TransportError
from .executor import Executor, Ticket, Wire

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Finished:
    """A driver's note that a flow returned, with its value."""

    value: Any


class Driver(Generic[T]):
    """Advances one flow; survives being cancelled between two steps.

    ``pending`` is the step the flow yielded that has no answer yet. If a
    call is cancelled while it waits, the next call answers that step first:
    an unanswered round trip gets :class:`Interrupted` thrown in (the flow
    decides how to recover), a cut-short sleep simply ends. When the flow
    itself raises, nothing is pending: the flow is over (``finished``).
    """

    def __init__(self, flow: Flow[T], executor: Executor) -> None:
        self.flow = flow
        self.executor = executor
        self.started = False
        self.finished = False
        self.pending: Step | None = None
        self.tickets: list[Ticket] = []  # round trips sent ahead, not collected

    async def advance(self) -> Delivery | Finished:
        """Run round trips and sleeps until the flow yields a delivery or returns.

        Raises:
            whatever the flow raises (it is then finished).
        """
        if self.finished:
            return Finished(None)
        flow = self.flow
        pending, self.pending = self.pending, None
        try:
            if not self.started:
                self.started = True
                step = next(flow)
            elif pending is not None and not isinstance(pending, Sleep | Delivery):
                step = flow.throw(Interrupted())
            else:  # after a delivery, or a sleep cut short
                step = flow.send(Resume(None, time.monotonic()))
            while type(step) is not Delivery:
                self.pending = step
                if type(step) is Sleep:
                    await anyio.sleep(step.seconds)
                    self.pending = None
                    step = flow.send(Resume(None, time.monotonic()))
                    continue
                try:
                    raw = await self._run(step)
                except TransportError as exc:
                    self.pending = None
                    step = flow.throw(exc)
                else:
                    self.pending = None
                    step = flow.send(Resume(raw, time.monotonic()))
        except StopIteration as stop:
            self.finished = True
            return Finished(stop.value)
        except BaseException:
            if self.pending is None:
                self.finished = True  # raised by the flow: it is over
            raise
        return step

    async def _run(self, step: Step) -> Any:
        if type(step) is Within:
            left = step.deadline - time.monotonic()
            if left > 0:
                with anyio.move_on_after(left):
                    return await self.executor.execute(step.step)
            raise DeadlinePassed("no reply from Redis within the publish retry budget")
        if type(step) is Ahead:
            ticket = await self._wire().send(step.step)
            self.tickets.append(ticket)
            return ticket
        if type(step) is Collect:
            ticket = step.ticket
            self.tickets.remove(ticket)
            return await self._wire().receive(ticket)
        return await self.executor.execute(step)  # type: ignore[arg-type]

    def _wire(self) -> Wire:
        if not isinstance(self.executor, Wire):
            raise LocalProtocolError("round trips sent ahead need the wire as executor")
        return self.executor

    async def abandon(self) -> None:
        """Drop the replies of round trips sent ahead and never collected."""
        tickets, self.tickets = self.tickets, []
        for ticket in tickets:
            await self._wire().abandon(ticket)


async def run_flow(flow: Flow[T], executor: Executor) -> T:
    """Run a flow that yields no deliveries to its end and return its value."""
    step = await Driver(flow, executor).advance()
    if not isinstance(step, Finished):
        raise LocalProtocolError(f"flow yielded a delivery where none was expected: {step!r}")
    result: T = step.value
    return result


def running_on_asyncio() -> bool:
    """True inside a running asyncio loop (trio has none)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def cancelled() -> bool:
    """Whether the calling task is being cancelled (anyio scopes, trio, or asyncio)."""
    if anyio.current_effective_deadline() == -math.inf:
        return True
    if running_on_asyncio():
        task = asyncio.current_task()
        cancelling = getattr(task, "cancelling", None)
        return bool(cancelling and cancelling())
    return False
