"""The whole error hierarchy of abe-redis.

Every error the package raises derives from :class:`AbeRedisError`, so one
``except AbeRedisError`` catches them all. redis-py exceptions never escape:
the transport maps them to these classes and chains the original with
``from``.

    AbeRedisError
    ├── ConfigError(AbeRedisError, ValueError)
    ├── ValidationError(AbeRedisError, ValueError)
    │   ├── StreamKeyError
    │   └── PayloadError
    ├── ProtocolError
    │   ├── LocalProtocolError
    │   └── RemoteProtocolError
    ├── CommandError
    │   ├── AccessDenied
    │   └── OutOfMemory
    ├── GroupMissingError
    ├── TransportError
    │   ├── ConnectError
    │   ├── TransportTimeout
    │   └── ServerBusy
    └── BackendClosed
"""

from __future__ import annotations

__all__ = [
    "AbeRedisError",
    "AccessDenied",
    "BackendClosed",
    "CommandError",
    "ConfigError",
    "ConnectError",
    "GroupMissingError",
    "LocalProtocolError",
    "OutOfMemory",
    "PayloadError",
    "ProtocolError",
    "RemoteProtocolError",
    "ServerBusy",
    "StreamKeyError",
    "TransportError",
    "TransportTimeout",
    "ValidationError",
]


class AbeRedisError(Exception):
    """Base class of every error raised by abe-redis."""


class ConfigError(AbeRedisError, ValueError):
    """Raised when a setting or environment variable has an invalid value."""


class ValidationError(AbeRedisError, ValueError):
    """Raised when a caller passes bad input; nothing has been written."""


class StreamKeyError(ValidationError):
    """Raised when a stream key is empty, not a str, or reserved."""


class PayloadError(ValidationError):
    """Raised when a payload is not a JSON object of JSON values."""


class ProtocolError(AbeRedisError):
    """Base class of errors about the conversation with Redis."""


class LocalProtocolError(ProtocolError):
    """Raised on misuse of the core, such as settling an id that was never delivered."""


class RemoteProtocolError(ProtocolError):
    """Raised when Redis sends a reply the core cannot decode."""


class CommandError(AbeRedisError):
    """Raised when Redis answers a command with an error reply we cannot act on."""


class AccessDenied(CommandError):
    """Raised when Redis refuses these credentials or this command to them
    (WRONGPASS, NOAUTH, NOPERM): a setting or an ACL to fix, never retried."""

    def needed(self, purpose: str) -> AccessDenied:
        """The same refusal, saying what the permission was needed for."""
        return AccessDenied(f"{self} (needed {purpose})")


class OutOfMemory(CommandError):
    """Raised when Redis is at ``maxmemory`` and refuses the write (OOM), after
    trimming what every group has finished did not make room."""


class NotReplicated(CommandError):
    """Raised by a durable publish (``REDIS_PUBLISH_WAIT_REPLICAS``) when fewer
    replicas than asked confirmed the write within ``REDIS_PUBLISH_WAIT_MS``.

    The entry *was* written on the primary (the message says its id); it is
    not retried, which would write it twice. It may be lost if the primary
    fails before a replica has it.
    """


class GroupMissingError(AbeRedisError):
    """Raised when a consumer group vanished and the policy says to fail, not recreate it."""


class TransportError(AbeRedisError):
    """Raised when talking to Redis failed (connection, socket, timeout)."""


class ConnectError(TransportError):
    """Raised when a connection to Redis cannot be opened or was lost."""


class TransportTimeout(TransportError):
    """Raised when Redis did not answer within the socket timeout."""


class ServerBusy(TransportError):
    """Raised when Redis answers but cannot run commands yet (LOADING after a restart, BUSY)."""


class BackendClosed(AbeRedisError):
    """Raised by any call on a backend or queue after it was closed."""
