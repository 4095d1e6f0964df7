"""Settings: a typed, validated description of how to reach Redis and consume.

Every setting is declared once, as a field of :class:`Settings` made with
:func:`setting`: its environment variable, how the variable's text is
parsed, its default, how values are checked and one line saying what it
means. :meth:`Settings.from_env` reads the variables, the constructor
checks values given in code, and :func:`configuration_table` renders the
table the README and the docs show (a test keeps them equal). Invalid
values raise :class:`ConfigError` naming the variable and what is wrong.
Passwords never appear in ``repr`` or messages.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from redis.connection import parse_url

from ._core.policy import GroupPolicy
from .errors import ConfigError
from .fastjson import JSON_CHOICES, JsonChoice, loads_for

__all__ = ["Settings", "configuration_table", "redact_url"]

Parse = Callable[[str, str], Any]
"""(variable name, its text) -> value; raises ConfigError."""
Check = Callable[[str, Any], None]
"""(variable name, value) -> None; raises ConfigError."""


def setting(
    default: Any, env: str, parse: Parse, check: Check, doc: str, *, shown: str | None = None
) -> Any:
    """Declare one setting: a dataclass field carrying its variable, parser,
    check and meaning. ``shown`` is how the table shows the default."""
    if shown is None:
        shown = "unset" if default is None else f"`{_text(default)}`"
    return dataclasses.field(
        default=default,
        repr=env not in ("REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD"),
        metadata={"env": env, "parse": parse, "check": check, "doc": doc, "shown": shown},
    )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, GroupPolicy):
        return _POLICY_NAMES[value]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- parsers (text of a variable -> value) ------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_POLICY_NAMES = {
    GroupPolicy.RECREATE_FROM_START: "recreate-from-start",
    GroupPolicy.RECREATE_FROM_END: "recreate-from-end",
    GroupPolicy.FAIL: "fail",
}


def _string(name: str, text: str) -> str:
    return text


def _boolean(name: str, text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {text!r}")


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {text!r}") from None


def _zero_is_off(name: str, text: str) -> int | None:
    return _integer(name, text) or None


def _seconds(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {text!r}") from None


def _names(name: str, text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(","))
    if any(not s for s in names):
        raise ConfigError(f"{name} has an empty name in {text!r}")
    return names


def _policy(name: str, text: str) -> GroupPolicy:
    for policy, policy_name in _POLICY_NAMES.items():
        if text.lower() == policy_name:
            return policy
    raise ConfigError(f"{name} must be one of {', '.join(_POLICY_NAMES.values())}, got {text!r}")


def _lower(name: str, text: str) -> str:
    return text.lower()


# -- checks (value -> ConfigError or nothing) ---------------------------------


def _any(name: str, value: Any) -> None:
    pass


def _is_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {type(value).__name__}")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {type(value).__name__}")
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")


def _optional(check: Check) -> Check:
    def optional(name: str, value: Any) -> None:
        if value is not None:
            check(name, value)

    return optional


def _positive_seconds(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value}")


def _seconds_or_zero(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not value >= 0:
        raise ConfigError(f"{name} must be >= 0, got {value}")


def _nonempty(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty string")


def _is_policy(name: str, value: Any) -> None:
    if not isinstance(value, GroupPolicy):
        raise ConfigError(f"{name} must be a GroupPolicy")


def _stream_names(name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or not value:
        raise ConfigError(f"{name} must name at least one stream")
    for stream in value:
        _nonempty(name, stream)


def _cluster_mode(name: str, value: Any) -> None:
    if value not in ("auto", "true", "false"):
        raise ConfigError(f"{name} must be auto, true or false, got {value!r}")


def _protocol(name: str, value: Any) -> None:
    if value not in (2, 3) or isinstance(value, bool):
        raise ConfigError(f"{name} must be 2 or 3, got {value!r}")


def _json_choice(name: str, value: Any) -> None:
    if value not in JSON_CHOICES:
        raise ConfigError(f"{name} must be one of {', '.join(JSON_CHOICES)}, got {value!r}")
    try:
        loads_for(value)
    except ImportError as exc:
        raise ConfigError(str(exc)) from None


SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL names: the sentinels, the service
    (the master's name), and how to talk to the master once found."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)


def parse_sentinel_url(name: str, url: str) -> SentinelTarget:
    """``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``.

    Raises:
        ConfigError: naming ``name`` and what is wrong (never the password).
    """
    rest = url.split("://", 1)[1]
    credentials, _, hosts_and_path = rest.rpartition("@")
    hosts, _, path = hosts_and_path.partition("/")
    username = password = None
    if credentials:
        user, sep, secret = credentials.partition(":")
        username, password = (user or None), (unquote(secret) if sep else None)
        if not sep:  # redis://secret@host means a password, as redis-py reads it
            username, password = None, unquote(user)
    sentinels = []
    for host_port in hosts.split(","):
        host, sep, port = host_port.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{name} names a sentinel that is not host:port: {host_port!r}")
        sentinels.append((host.strip("[]"), int(port)))
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ConfigError(f"{name} must end with /service_name or /service_name/db")
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise ConfigError(f"{name}'s db must be a number, got {parts[1]!r}")
        db = int(parts[1])
    return SentinelTarget(tuple(sentinels), unquote(parts[0]), db, username, password)


def _url(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty URL")
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme == SENTINEL_SCHEME:
        parse_sentinel_url(name, value)
        return
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"{name} must start with redis://, rediss://, unix:// or redis+sentinel:// "
            f"(got {scheme + '://' if scheme else 'no scheme'})"
        )
    try:
        parse_url(value)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError) as exc:
        # redis-py's messages do not echo the URL, but ours must not rely on
        # that: name the variable and the kind of problem only.
        raise ConfigError(f"{name} is not a valid Redis URL: {_scrub(exc, value)}") from None


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to log)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if "@" not in parts.netloc:
        return url
    credentials, _, hosts = parts.netloc.rpartition("@")
    user, sep, _ = credentials.partition(":")
    # No colon: the whole of it is a password (redis-py's reading).
    netloc = f"{user}:***@{hosts}" if sep else f"***@{hosts}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _scrub(exc: BaseException, url: str) -> str:
    message = str(exc)
    try:
        secret = urlsplit(url).password
    except ValueError:
        secret = None
    return message.replace(secret, "***") if secret else message


_INT = (_integer, _positive_int)
_OPT_INT = (_integer, _optional(_positive_int))
_OFF_INT = (_zero_is_off, _optional(_positive_int))
_SECONDS = (_seconds, _positive_seconds)
_PATH = (_string, _optional(_nonempty))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything abe-redis needs to know; every field is validated on creation.

    Each field is one setting; its environment variable and meaning are in
    :func:`configuration_table` (and the Configuration page of the docs).
    """

    url: str = setting(
        "redis://localhost:6379/0", "REDIS_URL", _string, _url,
        "`redis://`, `rediss://` (TLS), `unix://` or `redis+sentinel://h:p[,h:p]/service[/db]`. "
        "It may hold user and password.",
    )  # fmt: skip
    password: str | None = setting(
        None, "REDIS_PASSWORD", _string, _optional(_nonempty), "Used when the URL has no password."
    )
    ssl: bool = setting(
        False,
        "REDIS_SSL",
        _boolean,
        _is_bool,
        "`true` makes a `redis://` URL use TLS; with `redis+sentinel://`, to the sentinels "
        "and the master.",
    )
    ssl_ca_certs: str | None = setting(
        None, "REDIS_SSL_CA_CERTS", *_PATH,
        "CA file that verifies the server's certificate (default: the system's CAs).",
    )  # fmt: skip
    ssl_certfile: str | None = setting(
        None, "REDIS_SSL_CERTFILE", *_PATH, "Client certificate, for servers that ask for one."
    )
    ssl_keyfile: str | None = setting(
        None, "REDIS_SSL_KEYFILE", *_PATH, "Key of the client certificate."
    )
    ssl_verify: bool = setting(
        True, "REDIS_SSL_VERIFY", _boolean, _is_bool,
        "`false` turns off certificate and host name checks (**insecure**; tests only).",
    )  # fmt: skip
    cluster: str = setting(
        "auto", "REDIS_CLUSTER", _lower, _cluster_mode,
        "`auto`: a cluster when the URL names a cluster node; `true` requires one; `false`.",
    )  # fmt: skip
    sentinel_password: str | None = setting(
        None, "REDIS_SENTINEL_PASSWORD", _string, _optional(_nonempty),
        "Password of the sentinels, when they ask for one (`redis+sentinel://` URLs).",
    )  # fmt: skip
    client_name: str | None = setting(
        "abe-redis", "REDIS_CLIENT_NAME", _string, _optional(_nonempty),
        "`CLIENT SETNAME` of every connection, as `CLIENT LIST` shows it.",
    )  # fmt: skip
    max_connections: int = setting(
        50, "REDIS_MAX_CONNECTIONS", *_INT,
        "Connections per backend at most. Callers wait for a free one instead of failing.",
    )  # fmt: skip
    stream_maxlen: int | None = setting(
        None, "REDIS_STREAM_MAXLEN", *_OPT_INT,
        "`MAXLEN ~ n` on every publish. **Lossy**: it can delete unconsumed events.",
    )  # fmt: skip
    streams: tuple[str, ...] | None = setting(
        None, "REDIS_STREAMS", _names, _stream_names,
        "Comma-separated streams to consume. Unset, all registered streams.",
    )  # fmt: skip
    consumer_group: str = setting(
        "abe-redis", "REDIS_CONSUMER_GROUP", _string, _nonempty,
        "Group used by `consume(group=None)`.",
    )  # fmt: skip
    consumer_name: str | None = setting(
        None, "REDIS_CONSUMER_NAME", _string, _optional(_nonempty),
        "Consumer name (later consumers in the process get `-2`, `-3`, ...).",
        shown="`host-pid-n`",
    )  # fmt: skip
    claim_min_idle_ms: int = setting(
        30_000, "REDIS_CLAIM_MIN_IDLE_MS", *_INT,
        "Pending entries idle this long are taken from their (dead) consumer.",
    )  # fmt: skip
    block_ms: int = setting(1_000, "REDIS_BLOCK_MS", *_INT, "Blocking read window.")
    prefetch: int = setting(
        64, "REDIS_PREFETCH", *_INT, "Entries per read, and the ack batch size."
    )
    read_ahead: bool = setting(
        True, "REDIS_READ_AHEAD", _boolean, _is_bool,
        "Send the next read while a backlog is handed out (see Delivery guarantees).",
    )  # fmt: skip
    socket_timeout: float = setting(
        5.0, "REDIS_SOCKET_TIMEOUT", *_SECONDS, "Seconds. Always raised above the BLOCK window."
    )
    registry_key: str = setting(
        "abe_redis:streams", "REDIS_STREAM_REGISTRY", _string, _nonempty,
        "The set that names the published streams.",
    )  # fmt: skip
    protocol: int = setting(
        2, "REDIS_PROTOCOL", _integer, _protocol, "RESP version, `2` or `3` (`HELLO 3`)."
    )
    max_deliveries: int = setting(
        5,
        "REDIS_MAX_DELIVERIES",
        *_INT,
        "Deliveries before an entry goes to its dead-letter stream.",
    )
    retry_base: float = setting(
        1.0, "REDIS_RETRY_BASE", *_SECONDS,
        "Seconds a nacked delivery waits at first; the wait doubles per delivery.",
    )  # fmt: skip
    retry_cap: float = setting(
        60.0, "REDIS_RETRY_CAP", *_SECONDS, "Longest wait of a nacked delivery, in seconds."
    )
    on_missing_group: GroupPolicy = setting(
        GroupPolicy.RECREATE_FROM_START, "REDIS_ON_MISSING_GROUP", _policy, _is_policy,
        "Or `recreate-from-end`, or `fail`, when a group vanished.",
    )  # fmt: skip
    stale_consumer_ms: int | None = setting(
        3_600_000, "REDIS_STALE_CONSUMER_MS", *_OFF_INT,
        "Idle consumers with nothing pending are deleted (`0`: never).",
    )  # fmt: skip
    idempotency_field: str | None = setting(
        None, "REDIS_IDEMPOTENCY_FIELD", _string, _optional(_nonempty),
        "Payload field that deduplicates publishes (for example `event_id`).",
    )  # fmt: skip
    idempotency_window_ms: int = setting(
        600_000, "REDIS_IDEMPOTENCY_WINDOW_MS", *_INT, "How long an idempotency key is remembered."
    )
    max_payload_bytes: int = setting(
        1_048_576,
        "REDIS_MAX_PAYLOAD_BYTES",
        *_INT,
        "Largest payload accepted; larger entries read are dead-lettered undecoded.",
    )
    ungrouped_maxlen: int | None = setting(
        1_000_000, "REDIS_UNGROUPED_MAXLEN", *_OFF_INT,
        "Cap for streams no group reads yet (`0`: none).",
    )  # fmt: skip
    publish_retry_seconds: float = setting(
        5.0, "REDIS_PUBLISH_RETRY_SECONDS", _seconds, _seconds_or_zero,
        "Retry budget of a publish once connected.",
    )  # fmt: skip
    publish_wait_replicas: int | None = setting(
        None, "REDIS_PUBLISH_WAIT_REPLICAS", *_OFF_INT,
        "Durable publish: replicas that must confirm each write (`WAIT`), else "
        "`NotReplicated` (`0`: off).",
    )  # fmt: skip
    publish_wait_ms: int = setting(
        1_000, "REDIS_PUBLISH_WAIT_MS", *_INT,
        "How long a durable publish waits for its replicas, in milliseconds.",
    )  # fmt: skip
    drain_timeout: float = setting(
        5.0, "REDIS_DRAIN_TIMEOUT", *_SECONDS,
        "Seconds closing `deliveries()` waits for unsettled ones.",
    )  # fmt: skip
    max_lease_ms: int = setting(
        600_000, "REDIS_MAX_LEASE_MS", *_INT, "Longest a held entry's lease is renewed."
    )
    json: JsonChoice = setting(
        "auto", "REDIS_JSON", _lower, _json_choice,
        "Decode with orjson when installed (the `orjson` extra), with the standard "
        "library's results; `stdlib` to never use it.",
    )  # fmt: skip
    otel: bool = setting(
        False, "REDIS_OTEL", _boolean, _is_bool,
        "`true`: OpenTelemetry metrics and traces (the `otel` extra) through the global "
        "providers.",
    )  # fmt: skip

    def __post_init__(self) -> None:
        for f in fields(self):
            f.metadata["check"](f.metadata["env"], getattr(self, f.name))
        if self.ssl and self.url.lower().startswith("unix://"):
            raise ConfigError("REDIS_SSL cannot be used with a unix:// REDIS_URL")
        if self.streams is not None and self.registry_key in self.streams:
            raise ConfigError(
                f"REDIS_STREAMS names {self.registry_key!r}, which is the stream registry key"
            )

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            if f.name in ("password", "sentinel_password"):
                shown.append(f"{f.name}={'***' if getattr(self, f.name) else None}")
            elif f.name == "url":
                shown.append(f"url={redact_url(self.url)!r}")
            else:
                shown.append(f"{f.name}={getattr(self, f.name)!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def sentinel(self) -> SentinelTarget | None:
        """What a ``redis+sentinel://`` URL names, or None for other URLs."""
        if not self.url.lower().startswith(SENTINEL_SCHEME + "://"):
            return None
        return parse_sentinel_url("REDIS_URL", self.url)

    def url_options(self) -> dict[str, Any]:
        """What the URL says (host, port or path, db, username, password, TLS
        options, ...), read by redis-py's rules. Holds the password: never log it."""
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
        """Round-trip deadline of a blocking read: above the BLOCK window, always."""
        return max(self.socket_timeout, self.block_ms / 1000 + 5.0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (``os.environ`` by default).

        A variable that is unset or blank keeps the default.

        Raises:
            ConfigError: a variable has an invalid value; the message names it.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            text = env.get(name)
            if text is None or not text.strip():
                continue
            # A password is taken as it is; anything else without surrounding blanks.
            values[f.name] = f.metadata["parse"](
                name, text if f.name in ("password", "sentinel_password") else text.strip()
            )
        return cls(**values)


def configuration_table() -> str:
    """The Markdown table of every setting: variable, default, meaning."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for f in fields(Settings):
        rows.append(f"| `{f.metadata['env']}` | {f.metadata['shown']} | {f.metadata['doc']} |")
    return "\n".join(rows) + "\n"
