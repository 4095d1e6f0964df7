"""Auto-pipelining for threads: concurrent blocking publishes share round trips.

The rules are the async coalescer's (see :mod:`abe_redis._core.batching`):
whoever finds no round trip in flight flushes one batch, the rest wait on a
condition and the first still queued flushes next. A lone thread pays no
hop: it sends its own command from its own thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .._core.batching import Request, fail, merged, settle, shareable, take_batch
from .._core.commands import Command


class ThreadCoalescer:
    """Executes commands for many threads, merging them into shared pipelines."""

    def __init__(self, execute: Callable[[Command[Any]], Any], max_batch: int = 1000) -> None:
        self._execute = execute
        self._cond = threading.Condition()
        self._queue: list[Request] = []
        self._flushing = False
        self.max_batch = max_batch
        self.round_trips = 0

    def execute(self, cmd: Command[Any]) -> Any:
        """Run ``cmd`` in the next shared pipeline; its raw reply, or its error raised."""
        request = Request(cmd)
        if not shareable(cmd):
            self._send([request])
            return request.outcome()
        with self._cond:
            self._queue.append(request)
            while not request.done:
                if self._flushing:
                    self._cond.wait()
                    continue
                self._flushing = True
                batch = take_batch(self._queue, self.max_batch)
                self._cond.release()
                try:
                    self._send(batch)
                finally:
                    self._cond.acquire()
                    self._flushing = False
                    self._cond.notify_all()
        return request.outcome()

    def _send(self, batch: list[Request]) -> None:
        self.round_trips += 1
        try:
            reply = self._execute(merged(batch))
        except BaseException as exc:
            # KeyboardInterrupt in the flushing thread too: the other threads
            # of the batch must not wait for an answer that will not come.
            fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            settle(batch, reply)
