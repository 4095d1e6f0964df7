"""LeaseKeeper: what a closing consumer relies on."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio

from abe_redis._async.leases import LeaseKeeper
from abe_redis._core.steps import RoundTrip


class SlowRedis:
    """Answers renewals (EVALSHA) only once ``go`` is set; runs on the keeper's loop."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.go = threading.Event()
        self.calls: list[RoundTrip] = []
        self.threads: set[str] = set()

    async def execute(self, step: RoundTrip) -> Any:
        self.calls.append(step)
        self.threads.add(threading.current_thread().name)
        self.started.set()
        await anyio.to_thread.run_sync(self.go.wait, 5)
        return 1


def test_forget_and_wait_returns_only_after_a_renewal_in_flight() -> None:
    redis = SlowRedis()
    keeper = LeaseKeeper(lambda: redis, interval=3600, max_lease=600)
    keeper.update(1, "g", "c", {("s", "1-0")})
    renewal = threading.Thread(target=keeper.renew_once)
    renewal.start()
    assert redis.started.wait(5)
    returned: list[float] = []

    def forget() -> None:
        keeper.forget_and_wait(1)
        returned.append(time.monotonic())

    forgetting = threading.Thread(target=forget)
    forgetting.start()
    time.sleep(0.2)
    assert not returned  # still waiting for the renewal to land
    released_at = time.monotonic()
    redis.go.set()
    forgetting.join(5)
    renewal.join(5)
    assert returned
    assert returned[0] >= released_at
    # Forgotten: the next renewal sends nothing.
    calls = len(redis.calls)
    assert keeper.renew_once() == 0
    assert len(redis.calls) == calls
    # Renewals ran on the keeper's own loop, in its own thread.
    assert redis.threads == {"abe-redis-leases"}
    keeper.stop()


def test_stop_is_prompt_and_final() -> None:
    redis = SlowRedis()
    redis.go.set()
    keeper = LeaseKeeper(lambda: redis, interval=3600, max_lease=600)
    keeper.update(1, "g", "c", {("s", "1-0")})
    assert keeper.renew_once() == 1
    started = time.monotonic()
    keeper.stop()
    assert time.monotonic() - started < 2  # woken, not waiting out the interval
    keeper.update(1, "g", "c", {("s", "2-0")})  # no thread comes back after stop
    assert not any(t.name == "abe-redis-leases" for t in threading.enumerate())
