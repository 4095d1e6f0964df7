"""Settings are pure (no I/O); tested here with the core."""

from __future__ import annotations

import pytest

from abe_redis.config import Settings, redact_url
from abe_redis.errors import ConfigError

SECRET = "s3cr3t-pa55"


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.url == "redis://localhost:6379/0"
    assert s.consumer_group == "abe-redis"
    assert s.stream_maxlen is None
    assert s.streams is None
    assert s.max_connections == 50


def test_every_variable_is_read() -> None:
    s = Settings.from_env(
        {
            "REDIS_URL": "redis://cache:6380/2",
            "REDIS_PASSWORD": SECRET,
            "REDIS_SSL": "true",
            "REDIS_MAX_CONNECTIONS": "20",
            "REDIS_STREAM_MAXLEN": "100000",
            "REDIS_STREAMS": "slack_events, other",
            "REDIS_CONSUMER_GROUP": "workers",
            "REDIS_CONSUMER_NAME": "worker-a",
            "REDIS_CLAIM_MIN_IDLE_MS": "60000",
            "REDIS_BLOCK_MS": "500",
            "REDIS_PREFETCH": "8",
            "REDIS_SOCKET_TIMEOUT": "2.5",
            "REDIS_STREAM_REGISTRY": "app:streams",
            "REDIS_READ_AHEAD": "false",
        }
    )
    assert s.read_ahead is False
    assert s.password == SECRET
    assert s.ssl is True
    assert s.effective_url == "rediss://cache:6380/2"
    assert (s.max_connections, s.stream_maxlen, s.prefetch, s.block_ms) == (20, 100000, 8, 500)
    assert s.streams == ("slack_events", "other")
    assert (s.consumer_group, s.consumer_name, s.registry_key) == (
        "workers",
        "worker-a",
        "app:streams",
    )
    assert s.claim_min_idle_ms == 60000
    assert s.socket_timeout == 2.5


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"REDIS_URL": "http://host"}, "REDIS_URL"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://host:notaport"}, "REDIS_URL"),
        ({"REDIS_SSL": "maybe"}, "REDIS_SSL"),
        ({"REDIS_SSL": "1", "REDIS_URL": "unix:///tmp/r.sock"}, "REDIS_SSL"),
        ({"REDIS_MAX_CONNECTIONS": "ten"}, "REDIS_MAX_CONNECTIONS"),
        ({"REDIS_MAX_CONNECTIONS": "0"}, "REDIS_MAX_CONNECTIONS"),
        ({"REDIS_STREAM_MAXLEN": "-5"}, "REDIS_STREAM_MAXLEN"),
        ({"REDIS_STREAMS": "a,,b"}, "REDIS_STREAMS"),
        ({"REDIS_STREAMS": "abe_redis:streams"}, "REDIS_STREAMS"),
        ({"REDIS_CLAIM_MIN_IDLE_MS": "1.5"}, "REDIS_CLAIM_MIN_IDLE_MS"),
        ({"REDIS_BLOCK_MS": "0"}, "REDIS_BLOCK_MS"),
        ({"REDIS_PREFETCH": "x"}, "REDIS_PREFETCH"),
        ({"REDIS_READ_AHEAD": "sometimes"}, "REDIS_READ_AHEAD"),
        ({"REDIS_SOCKET_TIMEOUT": "soon"}, "REDIS_SOCKET_TIMEOUT"),
        ({"REDIS_SOCKET_TIMEOUT": "-1"}, "REDIS_SOCKET_TIMEOUT"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable) as info:
        Settings.from_env(env)
    assert isinstance(info.value, ValueError)


def test_programmatic_settings_are_validated_too() -> None:
    with pytest.raises(ConfigError, match="REDIS_PREFETCH"):
        Settings(prefetch=0)
    with pytest.raises(ConfigError, match="REDIS_CONSUMER_GROUP"):
        Settings(consumer_group=" ")
    with pytest.raises(ConfigError, match="REDIS_PROTOCOL"):
        Settings(protocol=4)
    with pytest.raises(ConfigError, match="REDIS_STREAMS"):
        Settings(streams=())


def test_unix_and_tls_urls_are_accepted() -> None:
    assert Settings(url="unix:///run/redis.sock").effective_url == "unix:///run/redis.sock"
    assert Settings(url="rediss://h:6380").effective_url == "rediss://h:6380"


def test_read_timeout_is_always_above_the_block_window() -> None:
    s = Settings(block_ms=20_000, socket_timeout=5)
    assert s.read_timeout > 20
    assert Settings(socket_timeout=60).read_timeout == 60


def test_passwords_never_show() -> None:
    url = f"redis://user:{SECRET}@cache:6379/0"
    s = Settings.from_env({"REDIS_URL": url, "REDIS_PASSWORD": SECRET})
    assert SECRET not in repr(s)
    assert SECRET not in str(s)
    assert SECRET not in s.redacted_url
    assert s.redacted_url == "redis://user:***@cache:6379/0"
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"REDIS_URL": f"redis://user:{SECRET}@cache:bad/0"})
    assert SECRET not in str(info.value)
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"REDIS_URL": f"http://user:{SECRET}@cache"})
    assert SECRET not in str(info.value)


def test_redact_url_leaves_passwordless_urls_alone() -> None:
    assert redact_url("redis://cache:6379/0") == "redis://cache:6379/0"
    assert redact_url(f"rediss://:{SECRET}@h") == "rediss://:***@h"


def test_reliability_variables_are_read() -> None:
    from abe_redis import GroupPolicy

    s = Settings.from_env(
        {
            "REDIS_MAX_DELIVERIES": "7",
            "REDIS_ON_MISSING_GROUP": "fail",
            "REDIS_STALE_CONSUMER_MS": "0",
            "REDIS_IDEMPOTENCY_FIELD": "event_id",
            "REDIS_IDEMPOTENCY_WINDOW_MS": "60000",
            "REDIS_MAX_PAYLOAD_BYTES": "4096",
            "REDIS_UNGROUPED_MAXLEN": "0",
            "REDIS_PUBLISH_RETRY_SECONDS": "0",
            "REDIS_DRAIN_TIMEOUT": "2.5",
            "REDIS_MAX_LEASE_MS": "120000",
        }
    )
    assert s.max_deliveries == 7
    assert s.on_missing_group is GroupPolicy.FAIL
    assert s.stale_consumer_ms is None  # 0 turns the clean-up off
    assert s.idempotency_field == "event_id"
    assert (s.idempotency_window_ms, s.max_payload_bytes, s.max_lease_ms) == (60000, 4096, 120000)
    assert s.ungrouped_maxlen is None
    assert s.publish_retry_seconds == 0
    assert s.drain_timeout == 2.5
    defaults = Settings()
    assert defaults.on_missing_group is GroupPolicy.RECREATE_FROM_START
    assert defaults.ungrouped_maxlen == 1_000_000


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"REDIS_MAX_DELIVERIES": "0"}, "REDIS_MAX_DELIVERIES"),
        ({"REDIS_ON_MISSING_GROUP": "ignore"}, "REDIS_ON_MISSING_GROUP"),
        ({"REDIS_STALE_CONSUMER_MS": "-1"}, "REDIS_STALE_CONSUMER_MS"),
        ({"REDIS_IDEMPOTENCY_WINDOW_MS": "soon"}, "REDIS_IDEMPOTENCY_WINDOW_MS"),
        ({"REDIS_MAX_PAYLOAD_BYTES": "0"}, "REDIS_MAX_PAYLOAD_BYTES"),
        ({"REDIS_PUBLISH_RETRY_SECONDS": "-2"}, "REDIS_PUBLISH_RETRY_SECONDS"),
        ({"REDIS_DRAIN_TIMEOUT": "0"}, "REDIS_DRAIN_TIMEOUT"),
        ({"REDIS_MAX_LEASE_MS": "x"}, "REDIS_MAX_LEASE_MS"),
    ],
)
def test_invalid_reliability_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env(env)
