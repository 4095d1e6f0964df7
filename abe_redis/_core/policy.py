"""Retry policy: exponential backoff with jitter, and one log line per outage."""

from __future__ import annotations

import enum
import logging
import random
from dataclasses import dataclass, field

from ..errors import ServerBusy

logger = logging.getLogger("abe_redis")


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


class GroupPolicy(enum.Enum):
    """What a consumer does when its group vanished (stream deleted, XGROUP DESTROY, a
    restart without persistence)."""

    RECREATE_FROM_START = "0"
    RECREATE_FROM_END = "$"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class RedeliveryPolicy:
    """When an entry has been delivered too often, and how long a failed one waits.

    ``max_deliveries`` counts deliveries as Redis does (XPENDING). An entry
    is dead-lettered instead of being delivered for the ``max + 1``-th
    time, or when a handler fails it on its ``max``-th delivery.
    """

    max_deliveries: int = 5
    retry_base: float = 1.0
    retry_cap: float = 60.0

    def retry_delay(self, deliveries: int, rng: random.Random) -> float:
        """Exponential by delivery count, capped, with jitter (half to full)."""
        ceiling = min(self.retry_cap, self.retry_base * 2 ** max(0, min(deliveries - 1, 30)))
        return rng.uniform(ceiling / 2, ceiling)
