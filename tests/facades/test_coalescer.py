"""The coalescer's rules with a scripted executor: sharing, errors, cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from abe_redis._core.commands import XAdd
from abe_redis._core.steps import Batch, RoundTrip
from abe_redis._io.coalescer import Coalescer
from abe_redis.errors import ConnectError, TransportError

pytestmark = pytest.mark.anyio


def add(n: int) -> XAdd:
    return XAdd("s", ((b"n", str(n).encode()),))


class Script:
    """Answers each XADD with its n; ``gate`` (when set) holds every round trip."""

    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[RoundTrip] = []
        self.error = error
        self.gate: anyio.Event | None = None
        self.in_flight = anyio.Event()

    async def execute(self, step: RoundTrip) -> Any:
        self.sent.append(step)
        self.in_flight.set()
        if self.gate is not None:
            await self.gate.wait()
        else:
            await anyio.sleep(0)
        if self.error is not None:
            raise self.error
        members = step.commands if isinstance(step, Batch) else (step,)
        replies = [int(dict(m.fields)[b"n"]) for m in members if isinstance(m, XAdd)]
        return replies if isinstance(step, Batch) else replies[0]


async def test_a_lone_caller_sends_its_own_command() -> None:
    script = Script()
    assert await Coalescer(script).execute(add(7)) == 7
    assert script.sent == [add(7)]


async def test_callers_queued_behind_a_round_trip_share_the_next_one() -> None:
    script = Script()
    script.gate = anyio.Event()
    coalescer = Coalescer(script)
    results: dict[int, Any] = {}

    async def call(n: int) -> None:
        results[n] = await coalescer.execute(add(n))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, 0)
        await script.in_flight.wait()
        for n in range(1, 10):
            tg.start_soon(call, n)
        await anyio.sleep(0.05)
        script.gate.set()
    assert results == {n: n for n in range(10)}  # everyone got their own answer
    assert len(script.sent) == 2  # the first alone, the nine others together
    assert isinstance(script.sent[1], Batch)
    assert len(script.sent[1].commands) == 9


async def test_an_error_reaches_every_caller_of_the_batch() -> None:
    script = Script(error=ConnectError("Redis went away"))
    coalescer = Coalescer(script)
    errors: list[BaseException] = []

    async def call(n: int) -> None:
        try:
            await coalescer.execute(add(n))
        except ConnectError as exc:
            errors.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for n in range(5):
                tg.start_soon(call, n)
    assert len(errors) == 5


async def test_transactions_go_alone() -> None:
    script = Script()
    multi = Batch((add(1), add(2)), transaction=True)
    assert await Coalescer(script).execute(multi) == [1, 2]
    assert script.sent == [multi]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_flusher_cancelled_mid_send_leaves_nobody_waiting() -> None:
    # Regression: the flusher was cancelled (natively, past anyio's shield)
    # while its batch carried another caller's request. The other caller was
    # never answered, and then sent empty batches without end.
    script = Script()
    script.gate = anyio.Event()
    coalescer = Coalescer(script)
    flusher = asyncio.ensure_future(coalescer.execute(add(0)))
    await script.in_flight.wait()  # round trip 1: the flusher's own, held
    script.in_flight = anyio.Event()
    other = asyncio.ensure_future(coalescer.execute(add(1)))
    third = asyncio.ensure_future(coalescer.execute(add(2)))
    await anyio.sleep(0.01)
    script.gate.set()  # round trip 1 answers; the next flush carries 1 and 2
    script.gate = anyio.Event()
    await script.in_flight.wait()
    flusher_of_two = other if not other.done() else third
    flusher_of_two.cancel()  # a native cancel, not anyio's
    with anyio.fail_after(2):
        results = await asyncio.gather(flusher, other, third, return_exceptions=True)
    assert results[0] == 0
    outcomes = results[1:]
    assert any(isinstance(r, asyncio.CancelledError) for r in outcomes)
    assert any(isinstance(r, TransportError) for r in outcomes)  # told, not left waiting
    sent = len(script.sent)
    await anyio.sleep(0.1)
    assert len(script.sent) == sent == 2  # no empty round trips after
    assert all(not isinstance(s, Batch) or s.commands for s in script.sent)


async def test_a_caller_cancelled_while_queued_is_never_sent() -> None:
    script = Script()
    script.gate = anyio.Event()
    coalescer = Coalescer(script)
    async with anyio.create_task_group() as tg:
        tg.start_soon(coalescer.execute, add(0))
        await script.in_flight.wait()
        with anyio.move_on_after(0.05):
            await coalescer.execute(add(1))  # queued behind round trip 1
        script.gate.set()
    script.gate = None
    assert await coalescer.execute(add(2)) == 2
    # The cancelled command never went out, not even with the next caller's.
    assert script.sent == [add(0), add(2)]
