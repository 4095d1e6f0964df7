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

from ._core.policy import GroupPolicy
from .errors import ConfigError
from .fastjson import JSON_CHOICES, JsonChoice, loads_for

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
    "max_deliveries": "REDIS_MAX_DELIVERIES",
    "on_missing_group": "REDIS_ON_MISSING_GROUP",
    "stale_consumer_ms": "REDIS_STALE_CONSUMER_MS",
    "idempotency_field": "REDIS_IDEMPOTENCY_FIELD",
    "idempotency_window_ms": "REDIS_IDEMPOTENCY_WINDOW_MS",
    "max_payload_bytes": "REDIS_MAX_PAYLOAD_BYTES",
    "ungrouped_maxlen": "REDIS_UNGROUPED_MAXLEN",
    "publish_retry_seconds": "REDIS_PUBLISH_RETRY_SECONDS",
    "drain_timeout": "REDIS_DRAIN_TIMEOUT",
    "max_lease_ms": "REDIS_MAX_LEASE_MS",
    "json": "REDIS_JSON",
}
_POLICIES = {
    "recreate-from-start": GroupPolicy.RECREATE_FROM_START,
    "recreate-from-end": GroupPolicy.RECREATE_FROM_END,
    "fail": GroupPolicy.FAIL,
}

# Integer settings, each validated as >= 1 (the optional ones when set).
_INTS = (
    "max_connections",
    "claim_min_idle_ms",
    "block_ms",
    "prefetch",
    "max_deliveries",
    "idempotency_window_ms",
    "max_payload_bytes",
    "max_lease_ms",
)
_OPTIONAL_INTS = ("stream_maxlen", "stale_consumer_ms", "ungrouped_maxlen")
_OFF_WHEN_ZERO = ("stale_consumer_ms", "ungrouped_maxlen")
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
        max_deliveries: an entry delivered more often goes to the dead-letter stream.
        retry_base, retry_cap: seconds; a failed delivery (``nack``) waits
            ``retry_base * 2**(deliveries-1)``, capped, with jitter.
        on_missing_group: what a consumer does when its group vanished.
        stale_consumer_ms: other consumers idle this long with nothing
            pending are deleted from the group; None never deletes.
        idempotency_field: payload field whose value is the idempotency key
            of ``publish`` (for example Slack's ``event_id``); None: off.
        idempotency_window_ms: how long an idempotency key is remembered.
        max_payload_bytes: largest encoded payload accepted.
        ungrouped_maxlen: cap for streams no group reads yet; None: no cap.
        publish_retry_seconds: how long a publish retries transport errors
            (after the backend first reached Redis) before raising.
        drain_timeout: seconds a closing consumer waits for unsettled deliveries.
        max_lease_ms: how long a delivery's lease is renewed at most; an
            entry held longer becomes claimable by other consumers.
        json: how consumers decode payloads: ``auto`` (orjson when installed,
            with results identical to the standard library's), ``stdlib`` or
            ``orjson`` (required). Publishing always encodes with the
            standard library.
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
    max_deliveries: int = 5
    retry_base: float = 1.0
    retry_cap: float = 60.0
    on_missing_group: GroupPolicy = GroupPolicy.RECREATE_FROM_START
    stale_consumer_ms: int | None = 3_600_000
    idempotency_field: str | None = None
    idempotency_window_ms: int = 600_000
    max_payload_bytes: int = 1_048_576
    ungrouped_maxlen: int | None = 1_000_000
    publish_retry_seconds: float = 5.0
    drain_timeout: float = 5.0
    max_lease_ms: int = 600_000
    json: JsonChoice = "auto"

    def __post_init__(self) -> None:
        self._check_url()
        for name in _INTS:
            _positive_int(name, getattr(self, name))
        for name in _OPTIONAL_INTS:
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        for name in ("socket_timeout", "retry_base", "retry_cap", "drain_timeout"):
            _positive_number(name, getattr(self, name))
        _positive_number("publish_retry_seconds", self.publish_retry_seconds, zero_ok=True)
        if not isinstance(self.on_missing_group, GroupPolicy):
            raise ConfigError(f"{_name('on_missing_group')} must be a GroupPolicy")
        if self.idempotency_field is not None:
            _nonempty("idempotency_field", self.idempotency_field)
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
        if self.json not in JSON_CHOICES:
            raise ConfigError(
                f"{_name('json')} must be one of {', '.join(JSON_CHOICES)}, got {self.json!r}"
            )
        try:
            loads_for(self.json)
        except ImportError as exc:
            raise ConfigError(str(exc)) from None

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

    def url_options(self) -> dict[str, Any]:
        """What the URL says (host, port or path, db, username, password, ...),
        read by redis-py's rules. Holds the password: never log it."""
        options: dict[str, Any] = parse_url(self.effective_url)  # type: ignore[no-untyped-call]
        return options

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
        for name in _INTS + _OPTIONAL_INTS:
            value = get(name)
            if value is not None:
                number = _parse_int(name, value)
                # 0 turns the stale-consumer clean-up (or the cap) off.
                kw[name] = (number or None) if name in _OFF_WHEN_ZERO else number
        for name in ("socket_timeout", "publish_retry_seconds", "drain_timeout"):
            value = get(name)
            if value is not None:
                try:
                    kw[name] = float(value)
                except ValueError:
                    raise ConfigError(
                        f"{_name(name)} must be a number of seconds, got {value!r}"
                    ) from None
        choice = get("json")
        if choice is not None:
            kw["json"] = choice.lower()
        field_name = get("idempotency_field")
        if field_name is not None:
            kw["idempotency_field"] = field_name
        policy = get("on_missing_group")
        if policy is not None:
            if policy.lower() not in _POLICIES:
                raise ConfigError(
                    f"REDIS_ON_MISSING_GROUP must be one of {', '.join(_POLICIES)}, got {policy!r}"
                )
            kw["on_missing_group"] = _POLICIES[policy.lower()]
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


def _positive_number(name: str, value: object, *, zero_ok: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{_name(name)} must be a number of seconds, got {type(value).__name__}")
    if value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(f"{_name(name)} must be {'>= 0' if zero_ok else '> 0'}, got {value}")


def _nonempty(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{_name(name)} must be a non-empty string")
