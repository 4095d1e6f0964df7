"""abe-redis: Redis Streams message-queue backend for abstract-backend hosts.

Public API:

* :class:`RedisMessageQueueBackend`: the host protocol (asyncio and trio).
* :class:`SyncRedisQueue`: the same for blocking code.
* :class:`Settings`: typed configuration; ``Settings.from_env()``.
* errors in :mod:`abe_redis.errors`.
"""

from __future__ import annotations

from ._async.backend import RedisMessageQueueBackend
from ._async.consumer import AsyncConsumer, AsyncDeliveries, AsyncDelivery
from ._core.consumer import ConsumerStats
from ._core.deadletters import ReplayResult
from ._core.entries import (
    ConsumerInfo,
    DeadLetter,
    Delivery,
    GroupInfo,
    PendingEntry,
    PendingSummary,
)
from ._core.policy import GroupPolicy
from ._core.status import GroupStatus, QueueStatus, ServerStatus, StreamStatus
from ._sync.backend import SyncConsumer, SyncDeliveries, SyncDelivery, SyncRedisQueue
from .config import Settings
from .errors import (
    AbeRedisError,
    AccessDenied,
    BackendClosed,
    CommandError,
    ConfigError,
    ConnectError,
    GroupMissingError,
    LocalProtocolError,
    NotReplicated,
    OutOfMemory,
    PayloadError,
    ProtocolError,
    RemoteProtocolError,
    ServerBusy,
    StreamKeyError,
    TransportError,
    TransportTimeout,
    ValidationError,
)

__version__ = "0.2.0"

__all__ = [
    "AbeRedisError",
    "AccessDenied",
    "AsyncConsumer",
    "AsyncDeliveries",
    "AsyncDelivery",
    "BackendClosed",
    "CommandError",
    "ConfigError",
    "ConnectError",
    "ConsumerInfo",
    "ConsumerStats",
    "DeadLetter",
    "Delivery",
    "GroupInfo",
    "GroupMissingError",
    "GroupPolicy",
    "GroupStatus",
    "LocalProtocolError",
    "NotReplicated",
    "OutOfMemory",
    "PayloadError",
    "PendingEntry",
    "PendingSummary",
    "ProtocolError",
    "QueueStatus",
    "RedisMessageQueueBackend",
    "RemoteProtocolError",
    "ReplayResult",
    "ServerBusy",
    "ServerStatus",
    "Settings",
    "StreamKeyError",
    "StreamStatus",
    "SyncConsumer",
    "SyncDeliveries",
    "SyncDelivery",
    "SyncRedisQueue",
    "TransportError",
    "TransportTimeout",
    "ValidationError",
    "__version__",
]
