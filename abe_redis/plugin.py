"""Entry-point target and the groups hosts read.

Hosts differ in the group they read, so the package registers the same
target, under the name ``redis``, in every one of :data:`ENTRY_POINT_GROUPS`
(see ``pyproject.toml``). :func:`load_backend` resolves it the way the
``abstract-backend`` loader does, for Pythons the loader does not support.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from ._async.backend import RedisMessageQueueBackend
from .errors import ConfigError

__all__ = ["BACKEND_NAME", "ENTRY_POINT_GROUPS", "RedisMessageQueueBackend", "load_backend"]

BACKEND_NAME = "redis"
ENTRY_POINT_GROUPS = (
    "abe.backends.message_queue",  # the published abstract-backend loader
    "abe.backends.message_queue.service",  # abstract-backend's own pyproject
    "slack_mcp.queue_backends",  # older Slack MCP servers
    "slack_mcp.backends.queue",  # what those servers' docs say
    "abstract_backend.backends.queue",  # what the project's origin post tells users
)


def load_backend(
    group: str = ENTRY_POINT_GROUPS[0], name: str = BACKEND_NAME
) -> RedisMessageQueueBackend:
    """Resolve ``name`` in entry-point ``group`` and call its ``from_env()``.

    Raises:
        ConfigError: nothing is registered under that name and group.
    """
    for ep in entry_points(group=group):
        if ep.name == name:
            backend_class = ep.load()
            backend: RedisMessageQueueBackend = backend_class.from_env()
            return backend
    raise ConfigError(f"no backend named {name!r} in entry-point group {group!r}")
