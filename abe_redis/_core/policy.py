"""Delivery policy: when a vanished group is recreated, when an entry is dead-lettered."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass


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
