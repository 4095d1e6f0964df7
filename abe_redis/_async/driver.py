"""Drives core flows with ``await transport.execute(cmd)``, or from a plain
thread with a blocking ``execute`` (:func:`run_flow_blocking`).

The sync facade runs the async driver's coroutines in its portal thread for
consuming; it publishes from the calling thread with the blocking driver.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import anyio

from .._core.commands import Command
from .._core.entries import Delivery
from .._core.steps import Finished, Flow, Interrupted, Resume, Sleep, Step
from ..errors import LocalProtocolError, TransportError
from .transport import running_on_asyncio

T = TypeVar("T")


class Executor(Protocol):
    """What a driver needs: run one command, return its raw reply (a transport,
    or the coalescer in front of one)."""

    async def execute(self, cmd: Command[Any]) -> Any: ...


class Driver(Generic[T]):
    """Advances one flow; survives being cancelled between two steps.

    ``pending`` is the step the flow yielded that has no answer yet. If a
    call is cancelled while it waits, the next call answers that step first:
    an unanswered command gets :class:`Interrupted` thrown in (the flow
    decides how to recover), a cut-short sleep simply ends.
    """

    def __init__(self, flow: Flow[T], transport: Executor) -> None:
        self.flow = flow
        self.transport = transport
        self.started = False
        self.pending: Step | None = None

    async def advance(self) -> Delivery | Finished:
        """Run commands and sleeps until the flow yields a delivery or returns."""
        try:
            if not self.started:
                self.started = True
                step = next(self.flow)
            elif isinstance(self.pending, Command):
                step = self.flow.throw(Interrupted())
            else:  # after a delivery, or a sleep cut short
                step = self.flow.send(Resume(None, time.monotonic()))
            while not isinstance(step, Delivery):
                self.pending = step
                if isinstance(step, Sleep):
                    await anyio.sleep(step.seconds)
                    step = self.flow.send(Resume(None, time.monotonic()))
                elif isinstance(step, Command):
                    try:
                        raw = await self.transport.execute(step)
                    except TransportError as exc:
                        step = self.flow.throw(exc)
                    else:
                        step = self.flow.send(Resume(raw, time.monotonic()))
                else:
                    raise LocalProtocolError(f"flow yielded {step!r}")
        except StopIteration as stop:
            self.pending = None
            return Finished(stop.value)
        self.pending = None
        return step


async def run_flow(flow: Flow[T], transport: Executor) -> T:
    """Run a flow that yields no deliveries to its end and return its value."""
    step = await Driver(flow, transport).advance()
    if not isinstance(step, Finished):
        raise LocalProtocolError(f"flow yielded a delivery where none was expected: {step!r}")
    result: T = step.value
    return result


def run_flow_blocking(flow: Flow[T], execute: Callable[[Command[Any]], Any]) -> T:
    """Run a flow that yields no deliveries to its end, blocking this thread."""
    try:
        step = next(flow)
        while True:
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                step = flow.send(Resume(None, time.monotonic()))
            elif isinstance(step, Command):
                try:
                    raw = execute(step)
                except TransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(Resume(raw, time.monotonic()))
            else:
                raise LocalProtocolError(f"flow yielded {step!r} where a command was expected")
    except StopIteration as stop:
        result: T = stop.value
        return result


def cancelled() -> bool:
    """Whether the calling task is being cancelled (anyio scopes, trio, or asyncio)."""
    if anyio.current_effective_deadline() == -math.inf:
        return True
    if running_on_asyncio():
        task = asyncio.current_task()
        cancelling = getattr(task, "cancelling", None)
        return bool(cancelling and cancelling())
    return False
