"""abe-redis: Redis Streams message-queue backend for abstract-backend hosts.

Public API:

* :class:`RedisMessageQueueBackend`: the host protocol (asyncio and trio).
* :class:`SyncRedisQueue`: the same for blocking code.
* :class:`Settings`: typed configuration; ``Settings.from_env()``.
* errors in :mod:`abe_redis.errors`.
"""

from __future__ import annotations

from ._async.backend import RedisMessageQueueBackend
from ._async.consumer import AsyncConsumer
from ._core.entries import Delivery, GroupInfo, PendingEntry, PendingSummary
from ._sync.backend import SyncConsumer, SyncRedisQueue
from .config import Settings
from .errors import (
    AbeRedisError,
    BackendClosed,
    CommandError,
    ConfigError,
    ConnectError,
    LocalProtocolError,
    PayloadError,
    ProtocolError,
    RemoteProtocolError,
    StreamKeyError,
    TransportError,
    TransportTimeout,
    ValidationError,
)

__version__ = "0.2.0"

__all__ = [
    "AbeRedisError",
    "AsyncConsumer",
    "BackendClosed",
    "CommandError",
    "ConfigError",
    "ConnectError",
    "Delivery",
    "GroupInfo",
    "LocalProtocolError",
    "PayloadError",
    "PendingEntry",
    "PendingSummary",
    "ProtocolError",
    "RedisMessageQueueBackend",
    "RemoteProtocolError",
    "Settings",
    "StreamKeyError",
    "SyncConsumer",
    "SyncRedisQueue",
    "TransportError",
    "TransportTimeout",
    "ValidationError",
    "__version__",
]
