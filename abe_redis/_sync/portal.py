"""The sync facade's event loop: an anyio blocking portal, and how calls reach it.

The portal runs an asyncio loop in one background thread for the life of a
:class:`~abe_redis.SyncRedisQueue`; every blocking method runs the async
facade's own coroutine on it. Calls are handed over as a plain task on the
portal's loop rather than with ``BlockingPortal.call``: both run the same
coroutine on the same loop, but the portal's call spawns a task in its task
group and costs several times as much per call (see docs/design.md for the
figures; a publish round trip to Redis takes about 100 µs). The task runs
in a fresh context, not a copy of the caller's: a caller inside trio (or
any loop) must not make anyio inside the task believe it runs there.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

T = TypeVar("T")
_EAGER: Any = getattr(asyncio, "eager_task_factory", None)


class Portal:
    """An asyncio loop in a thread of its own; see the module docstring."""

    def __init__(self) -> None:
        self._cm: AbstractContextManager[BlockingPortal] = start_blocking_portal("asyncio")
        self.portal = self._cm.__enter__()
        self.loop: asyncio.AbstractEventLoop = self.portal.call(asyncio.get_running_loop)

    def call(self, func: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run ``func(*args)`` on the loop and wait for its result (or its error).

        If the waiting thread is interrupted (KeyboardInterrupt), the call is
        cancelled on the loop before the interruption goes on.
        """
        loop = self.loop
        coro = func(*args)  # only made here; it runs on the loop
        done = threading.Lock()
        done.acquire()
        outcome: list[tuple[bool, Any]] = []
        tasks: list[asyncio.Task[None]] = []

        async def run() -> None:
            # The outcome is handed over here, in the task's last step: no
            # done-callback round of the loop, and no exception left in the
            # task for asyncio to warn about.
            try:
                outcome.append((True, await coro))
            except BaseException as exc:
                outcome.append((False, exc))
            finally:
                done.release()

        def start() -> None:
            # Eager where asyncio has it (3.12+): the first step runs now,
            # not one loop round later.
            tasks.append(_EAGER(loop, run()) if _EAGER else loop.create_task(run()))

        loop.call_soon_threadsafe(start, context=contextvars.Context())
        try:
            done.acquire()
        except BaseException:
            loop.call_soon_threadsafe(lambda: [task.cancel() for task in tasks])
            raise
        ok, value = outcome[0]
        if not ok:
            raise value
        result: T = value
        return result

    def run_sync(self, func: Callable[..., T], *args: Any) -> T:
        """Run the plain function ``func(*args)`` in the loop's thread and wait."""
        return self.portal.call(func, *args)

    def call_soon(self, func: Callable[[], object]) -> None:
        """Schedule ``func()`` on the loop without waiting (safe in a signal handler)."""
        self.loop.call_soon_threadsafe(func)

    def close(self) -> None:
        """Stop the loop and its thread."""
        self._cm.__exit__(None, None, None)
