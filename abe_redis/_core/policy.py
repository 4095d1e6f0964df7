"""Retry policy: exponential backoff with full jitter, and one log line per outage."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

logger = logging.getLogger("abe_redis")


@dataclass(slots=True)
class Backoff:
    """Tracks one outage at a time: delays grow, the log says it once.

    ``failure`` returns how long to wait before the next attempt; the first
    failure of an outage logs a warning, later ones stay quiet, and the first
    success after it logs how long it lasted.
    """

    base: float = 0.05
    cap: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0
    started: float | None = None

    def failure(self, error: BaseException, now: float) -> float:
        if self.attempts == 0:
            self.started = now
            logger.warning(
                "Redis unavailable (%s: %s); retrying with backoff until it answers",
                type(error).__name__,
                error,
            )
        self.attempts += 1
        ceiling = min(self.cap, self.base * 2 ** min(self.attempts, 20))
        return self.rng.uniform(ceiling / 2, ceiling)

    def success(self, now: float) -> None:
        if self.attempts:
            lasted = now - (self.started if self.started is not None else now)
            logger.warning(
                "Redis answering again after %.1f s and %d failed attempts", lasted, self.attempts
            )
            self.attempts = 0
            self.started = None
