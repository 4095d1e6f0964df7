from __future__ import annotations

import logging
import random

import pytest

from abe_redis._core.retry import Backoff, Outage
from abe_redis.errors import ConnectError

DOWN = ConnectError("connection refused")


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_delays_grow_with_failures_up_to_the_cap() -> None:
    backoff = Backoff(base=0.05, cap=2.0, rng=random.Random(1))
    delays = [backoff.failure(DOWN, float(n)) for n in range(10)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(d <= 2.0 for d in delays)
    assert delays[-1] >= 1.0  # at the cap: half to full
    backoff.success(10.0)
    assert backoff.attempts == 0
    assert backoff.failure(DOWN, 11.0) <= 0.1  # a new outage starts small


def test_one_outage_is_logged_once_however_many_parties_see_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="abe_redis")
    outage = Outage()
    publisher, consumer = Backoff(outage=outage), Backoff(outage=outage)
    for now in (0.0, 0.1, 0.2):
        consumer.failure(DOWN, now)
    first_delay = publisher.failure(DOWN, 0.3)
    assert first_delay <= 0.1  # its own delays: not slowed by the consumer's failures
    publisher.success(1.5)
    consumer.success(1.6)
    assert messages(caplog) == [
        "Redis unavailable (ConnectError: connection refused); "
        "retrying with backoff until it answers",
        "Redis answering again after 1.5 s and 4 failed attempts",
    ]
    # The next outage is logged again.
    consumer.failure(DOWN, 5.0)
    assert len(messages(caplog)) == 3
