"""Retrying: backoff with jitter, one log line per outage, and the one retry loop.

The consumer and the publisher both go through :func:`retrying`; they
differ only in when they give up (:func:`fails_at_start`, a budget) and in
what a lost reply means to them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ..errors import ServerBusy, TransportError
from .steps import DeadlinePassed, Flow, Interrupted, Sleep

logger = logging.getLogger("abe_redis")
T = TypeVar("T")


def fails_at_start(error: BaseException) -> bool:
    """Whether ``error``, met before Redis was ever reached, is raised at once.

    An unreachable server or refused credentials are most likely a wrong
    setting, so they are not retried then. A server that answered it cannot
    run commands yet (:class:`ServerBusy`, such as LOADING) is reachable:
    that is waited for like an outage.
    """
    return not isinstance(error, ServerBusy)


@dataclass(slots=True)
class Outage:
    """What the log says about one outage; shared by everything reaching one Redis.

    The first failure logs a warning, the first success after it logs how
    long it lasted; other failures and successes in between stay quiet.
    """

    started: float | None = None
    failures: int = 0

    def failure(self, error: BaseException, now: float) -> None:
        self.failures += 1
        if self.started is None:
            self.started = now
            logger.warning(
                "Redis unavailable (%s: %s); retrying with backoff until it answers",
                type(error).__name__,
                error,
            )

    def success(self, now: float) -> None:
        if self.started is not None:
            logger.warning(
                "Redis answering again after %.1f s and %d failed attempts",
                now - self.started,
                self.failures,
            )
            self.started = None
            self.failures = 0


@dataclass(slots=True)
class Backoff:
    """One party's retry delays; ``outage`` (possibly shared) does the logging.

    ``failure`` returns how long to wait before the next attempt: the delay
    grows with this party's own failures, so parties sharing an outage log
    do not slow each other down.
    """

    base: float = 0.05
    cap: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0
    outage: Outage = field(default_factory=Outage)

    def failure(self, error: BaseException, now: float) -> float:
        self.outage.failure(error, now)
        self.attempts += 1
        ceiling = min(self.cap, self.base * 2 ** min(self.attempts, 20))
        return self.rng.uniform(ceiling / 2, ceiling)

    def success(self, now: float) -> None:
        if self.attempts:
            self.outage.success(now)
            self.attempts = 0


def retrying(
    attempt: Callable[[], Flow[T]],
    backoff: Backoff,
    clock: Callable[[], float],
    *,
    fatal: Callable[[TransportError], bool],
    deadline: float | None = None,
    lost: Callable[[], None] | None = None,
    tick: Callable[[float], None] | None = None,
) -> Flow[T]:
    """Flow: run ``attempt()`` until it returns.

    After a transport error the attempt runs again once the backoff delay
    has passed. It is raised instead when ``fatal(error)`` (at once, before
    any outage is logged) or when the ``deadline`` has passed (the delay
    is cut to end at it; the attempt itself bounds its round trips by it,
    see :class:`~abe_redis._core.steps.Within`; its cut-off,
    :class:`DeadlinePassed`, is never ``fatal`` and raises the error Redis
    gave before it, if any). A round trip cut short by
    cancellation (:class:`Interrupted`) is sent again at once. ``lost()``
    runs after either, since the lost reply may have done something
    (delivered entries, for a consumer). ``clock()`` is the latest time the
    flow was given; ``tick(now)`` hears the time after a sleep.
    """
    previous: TransportError | None = None
    while True:
        try:
            value = yield from attempt()
        except Interrupted:
            if lost is not None:
                lost()
            continue
        except TransportError as exc:
            if lost is not None:
                lost()
            if isinstance(exc, DeadlinePassed):
                # Our own cut-off, not something Redis said: never "fatal at
                # start", and the error raised is what Redis last said.
                if previous is not None:
                    raise previous from None
                raise
            if fatal(exc):
                raise
            if deadline is not None:
                # The attempt took an unknown time: ask the clock.
                now = (yield Sleep(0)).now
                if tick is not None:
                    tick(now)
                if now >= deadline:
                    raise
            previous = exc
            delay = backoff.failure(exc, clock())
            if deadline is not None:
                delay = min(delay, deadline - clock())
            resume = yield Sleep(delay)
            if tick is not None:
                tick(resume.now)
            if deadline is not None and resume.now >= deadline:
                raise  # no time left for another attempt: what Redis last said
            continue
        backoff.success(clock())
        return value
