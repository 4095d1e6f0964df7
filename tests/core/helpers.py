"""Play canned replies through a core flow, like h11's test helpers."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from abe_redis._core.steps import Flow, Resume, Step, Within

T = TypeVar("T")


class Player(Generic[T]):
    """Steps a flow by hand: ``step`` is what it yielded last.

    A round trip with a deadline (:class:`Within`) shows as its round trip;
    ``deadline`` holds the deadline (None when the step has none).
    """

    def __init__(self, flow: Flow[T], now: float = 0.0) -> None:
        self.flow = flow
        self.now = now
        self.done = False
        self.result: T | None = None
        self.deadline: float | None = None
        self.step: Step | None = self._guard(lambda: next(flow))

    def _guard(self, fn: Any) -> Step | None:
        try:
            step: Step = fn()
        except StopIteration as stop:
            self.done = True
            self.result = stop.value
            return None
        self.deadline = None
        if type(step) is Within:
            self.deadline = step.deadline
            return step.step
        return step

    def reply(self, raw: Any = None, *, advance: float = 0.0) -> Step | None:
        """Answer the current step with ``raw`` after ``advance`` seconds."""
        self.now += advance
        self.step = self._guard(lambda: self.flow.send(Resume(raw, self.now)))
        return self.step

    def throw(self, exc: BaseException) -> Step | None:
        """Throw ``exc`` in at the current step."""
        self.step = self._guard(lambda: self.flow.throw(exc))
        return self.step


def entry(entry_id: str, data: bytes) -> list[Any]:
    """A RESP2 stream entry written by us."""
    return [entry_id.encode(), [b"data", data]]
