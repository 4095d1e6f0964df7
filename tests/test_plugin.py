"""The package as hosts see it: entry points, typing marker, public names."""

from __future__ import annotations

from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import abe_redis
from abe_redis import RedisMessageQueueBackend
from abe_redis.errors import ConfigError
from abe_redis.plugin import BACKEND_NAME, ENTRY_POINT_GROUPS, load_backend


@pytest.mark.parametrize("group", ENTRY_POINT_GROUPS)
def test_registered_as_redis_in_every_group_hosts_read(group: str) -> None:
    (ep,) = [ep for ep in entry_points(group=group) if ep.name == BACKEND_NAME]
    assert ep.load() is RedisMessageQueueBackend


def test_the_groups_are_the_ones_hosts_use() -> None:
    assert set(ENTRY_POINT_GROUPS) == {
        "abe.backends.message_queue",
        "abe.backends.message_queue.service",
        "slack_mcp.queue_backends",
        "slack_mcp.backends.queue",
        "abstract_backend.backends.queue",
    }


def test_the_readme_lists_every_group() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for group in ENTRY_POINT_GROUPS:
        assert f"`{group}`" in readme, group


def test_load_backend_resolves_like_the_host_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert isinstance(load_backend(), RedisMessageQueueBackend)
    with pytest.raises(ConfigError, match="no backend named 'nope'"):
        load_backend(name="nope")


def test_py_typed_ships() -> None:
    assert resources.files("abe_redis").joinpath("py.typed").is_file()


def test_public_names() -> None:
    for name in abe_redis.__all__:
        assert hasattr(abe_redis, name), name
    assert issubclass(abe_redis.ConfigError, ValueError)
    assert issubclass(abe_redis.ConnectError, abe_redis.TransportError)
