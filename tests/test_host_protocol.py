"""The backend against abstract-backend's own protocol (Python 3.12+ only)."""

from __future__ import annotations

import inspect

from abe.types import MessageQueueBackendProtocol

from abe_redis import RedisMessageQueueBackend


def test_satisfies_the_host_protocol_at_run_time() -> None:
    assert isinstance(RedisMessageQueueBackend(), MessageQueueBackendProtocol)


def test_consume_takes_group_as_keyword_only() -> None:
    params = inspect.signature(RedisMessageQueueBackend.consume).parameters
    assert params["group"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["group"].default is None


def test_from_env_is_a_classmethod() -> None:
    assert inspect.ismethod(RedisMessageQueueBackend.from_env)
