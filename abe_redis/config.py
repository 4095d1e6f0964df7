"""Settings: a typed, validated description of how to reach Redis and consume.

:meth:`Settings.from_env` reads the environment (the variables of the old
plugin keep their meaning); the constructor serves programmatic use. Both
validate everything and raise :class:`ConfigError` naming the variable (or
field) and what is wrong. Passwords never appear in ``repr`` or messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.connection import parse_url

from .errors import ConfigError

__all__ = ["ENV_VARS", "Settings", "redact_url"]

# field name -> environment variable; used for reading and for messages.
ENV_VARS: dict[str, str] = {
    "url": "REDIS_URL",
    "password": "REDIS_PASSWORD",
    "ssl": "REDIS_SSL",
    "max_connections": "REDIS_MAX_CONNECTIONS",
    "stream_maxlen": "REDIS_STREAM_MAXLEN",
    "streams": "REDIS_STREAMS",
    "consumer_group": "REDIS_CONSUMER_GROUP",
    "consumer_name": "REDIS_CONSUMER_NAME",
    "claim_min_idle_ms": "REDIS_CLAIM_MIN_IDLE_MS",
    "block_ms": "REDIS_BLOCK_MS",
    "prefetch": "REDIS_PREFETCH",
    "socket_timeout": "REDIS_SOCKET_TIMEOUT",
    "registry_key": "REDIS_STREAM_REGISTRY",
}

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to log)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{user}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _name(field_name: str) -> str:
    return f"{ENV_VARS.get(field_name, field_name)}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything abe-redis needs to know; every field is validated on creation.

    Attributes:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL; user and password may be in it.
        password: used when the URL carries none (the URL's wins, as in redis-py).
        ssl: force TLS on a ``redis://`` URL (same as writing ``rediss://``).
        max_connections: size of the connection pool; callers wait for a free
            connection instead of failing with "Too many connections".
        stream_maxlen: approximate MAXLEN on every XADD. Lossy: trimming can
            delete entries a group has not read yet. None (default) never trims.
        streams: read only these streams; None reads every registered stream.
        consumer_group: the group ``consume(group=None)`` joins.
        consumer_name: this process's consumer name; default host-pid-n.
        claim_min_idle_ms: pending entries idle this long are reclaimed from
            their (presumably dead) consumer.
        block_ms: how long one blocking read waits for new entries.
        prefetch: entries fetched per read (COUNT).
        socket_timeout: seconds before a silent socket is an error; always
            raised above the BLOCK window for blocking reads.
        registry_key: the set naming every published stream.
        protocol: RESP version, 2 or 3.
    """

    url: str = "redis://localhost:6379/0"
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    max_connections: int = 50
    stream_maxlen: int | None = None
    streams: tuple[str, ...] | None = None
    consumer_group: str = "abe-redis"
    consumer_name: str | None = None
    claim_min_idle_ms: int = 30_000
    block_ms: int = 1_000
    prefetch: int = 64
    socket_timeout: float = 5.0
    registry_key: str = "abe_redis:streams"
    protocol: int = 2

    def __post_init__(self) -> None:
        self._check_url()
        for name in ("max_connections", "claim_min_idle_ms", "block_ms", "prefetch"):
            _positive_int(name, getattr(self, name))
        if self.stream_maxlen is not None:
            _positive_int("stream_maxlen", self.stream_maxlen)
        if isinstance(self.socket_timeout, bool) or not isinstance(
            self.socket_timeout, int | float
        ):
            raise ConfigError(f"{_name('socket_timeout')} must be a number of seconds")
        if not self.socket_timeout > 0:
            raise ConfigError(f"{_name('socket_timeout')} must be > 0, got {self.socket_timeout}")
        for name in ("consumer_group", "registry_key"):
            _nonempty(name, getattr(self, name))
        if self.consumer_name is not None:
            _nonempty("consumer_name", self.consumer_name)
        if self.streams is not None:
            if not isinstance(self.streams, tuple) or not self.streams:
                raise ConfigError(f"{_name('streams')} must name at least one stream")
            for stream in self.streams:
                _nonempty("streams", stream)
                if stream == self.registry_key:
                    raise ConfigError(
                        f"{_name('streams')} names {stream!r}, which is the stream registry key"
                    )
        if self.protocol not in (2, 3):
            raise ConfigError(f"protocol must be 2 or 3, got {self.protocol!r}")

    def _check_url(self) -> None:
        if not isinstance(self.url, str) or not self.url:
            raise ConfigError(f"{_name('url')} must be a non-empty URL")
        scheme = self.url.split("://", 1)[0].lower() if "://" in self.url else ""
        if scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"{_name('url')} must start with redis://, rediss:// or unix:// "
                f"(got {scheme + '://' if scheme else 'no scheme'})"
            )
        if self.ssl and scheme == "unix":
            raise ConfigError(f"{_name('ssl')} cannot be used with a unix:// {_name('url')}")
        try:
            parse_url(self.url)  # type: ignore[no-untyped-call]
        except (ValueError, TypeError) as exc:
            # redis-py's messages do not echo the URL, but ours must not
            # rely on that: name the variable and the kind of problem only.
            raise ConfigError(
                f"{_name('url')} is not a valid Redis URL: {_scrub(exc, self)}"
            ) from None

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            if f.name == "password":
                shown.append(f"password={'***' if self.password else None}")
            elif f.name == "url":
                shown.append(f"url={redact_url(self.url)!r}")
            else:
                shown.append(f"{f.name}={getattr(self, f.name)!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def redacted_url(self) -> str:
        """The URL without its password, for logs and messages."""
        return redact_url(self.effective_url)

    @property
    def effective_url(self) -> str:
        """The URL to connect to, with ``ssl`` applied to a ``redis://`` URL."""
        if self.ssl and self.url.lower().startswith("redis://"):
            return "rediss://" + self.url[len("redis://") :]
        return self.url

    @property
    def read_timeout(self) -> float:
        """Socket timeout used by connections: above the BLOCK window, always."""
        return max(self.socket_timeout, self.block_ms / 1000 + 5.0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (``os.environ`` by default).

        Raises:
            ConfigError: a variable has an invalid value; the message names it.
        """
        env = os.environ if environ is None else environ
        kw: dict[str, Any] = {}

        def get(name: str) -> str | None:
            value = env.get(ENV_VARS[name])
            return None if value is None or value.strip() == "" else value.strip()

        for name in ("url", "password", "consumer_group", "consumer_name", "registry_key"):
            value = get(name)
            if value is not None:
                kw[name] = value if name != "password" else env[ENV_VARS[name]]
        ssl = get("ssl")
        if ssl is not None:
            if ssl.lower() in _TRUE:
                kw["ssl"] = True
            elif ssl.lower() in _FALSE:
                kw["ssl"] = False
            else:
                raise ConfigError(f"REDIS_SSL must be true or false, got {ssl!r}")
        for name in (
            "max_connections",
            "stream_maxlen",
            "claim_min_idle_ms",
            "block_ms",
            "prefetch",
        ):
            value = get(name)
            if value is not None:
                kw[name] = _parse_int(name, value)
        timeout = get("socket_timeout")
        if timeout is not None:
            try:
                kw["socket_timeout"] = float(timeout)
            except ValueError:
                raise ConfigError(
                    f"REDIS_SOCKET_TIMEOUT must be a number of seconds, got {timeout!r}"
                ) from None
        streams = get("streams")
        if streams is not None:
            names = tuple(s.strip() for s in streams.split(","))
            if any(not s for s in names):
                raise ConfigError(f"REDIS_STREAMS has an empty name in {streams!r}")
            kw["streams"] = names
        return cls(**kw)


def _scrub(exc: BaseException, settings: Settings) -> str:
    message = str(exc)
    if settings.password:
        message = message.replace(settings.password, "***")
    try:
        secret = urlsplit(settings.url).password
    except ValueError:
        secret = None
    return message.replace(secret, "***") if secret else message


def _parse_int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{_name(name)} must be an integer, got {value!r}") from None


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{_name(name)} must be an integer, got {type(value).__name__}")
    if value < 1:
        raise ConfigError(f"{_name(name)} must be at least 1, got {value}")


def _nonempty(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{_name(name)} must be a non-empty string")
