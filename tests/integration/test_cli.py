"""The ``abe-redis`` command line, run as a process against a real redis-server:
its output and its exit codes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from abe_redis import Settings, SyncRedisQueue
from abe_redis.embedded import RedisServer

from ..helpers import admin, clean_env

pytestmark = pytest.mark.integration


# A child started from a shell job may inherit SIGINT ignored (CI runs so),
# and Python then never raises KeyboardInterrupt: the tests that press
# Ctrl-C start the command with Python's own handler in place.
CTRL_C_ABLE = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'abe-redis'; runpy.run_module('abe_redis', run_name='__main__')"
)


def interruptible(url: str, *args: str) -> subprocess.Popen[str]:
    """The command as a process that Ctrl-C (SIGINT) interrupts."""
    return subprocess.Popen(
        [sys.executable, "-c", CTRL_C_ABLE, *args],
        env={**clean_env(), "REDIS_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def interrupt(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Ctrl-C, then what it printed; killed if it does not stop."""
    process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def cli(
    url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abe_redis", *args],
        env={**clean_env(), "REDIS_URL": url, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def queue(server: RedisServer) -> str:
    """Stream ``jobs``: 10 entries, group ``workers`` holding 6 of them (1 of
    them delivered twice), 2 dead-lettered with "boom"; stream ``mail``: 3
    entries, group ``senders`` read nothing; a consumer ``gone`` of
    ``workers``, idle and holding nothing. The URL."""
    with admin(server.url) as client:
        client.flushall()
    settings = Settings(
        url=server.url,
        max_deliveries=1,
        block_ms=100,
        claim_min_idle_ms=100,
        prefetch=8,
        read_ahead=False,
    )
    with SyncRedisQueue(settings) as q:
        for n in range(10):
            q.publish("jobs", {"n": n})
        with q.deliveries(group="workers") as deliveries:
            for i in range(8):
                delivery = next(deliveries)
                if i < 2:
                    delivery.nack(error="boom")
                elif i < 6:
                    pass  # held: pending
                else:
                    delivery.ack()
            deliveries.close(drain_timeout=0)  # the held ones stay pending: no wait for them
        for n in range(3):  # after: no group workers on it
            q.publish("mail", {"n": n})
    with admin(server.url) as client:
        client.xgroup_create("mail", "senders", "0")
        client.xgroup_createconsumer("jobs", "workers", "gone")
        # Held entries stay pending under one consumer (closing released them).
        client.xautoclaim("jobs", "workers", "holder", 0, "0-0", count=4)
    time.sleep(0.05)
    return server.url


def test_status_shows_every_stream_and_group(queue: str) -> None:
    run = cli(queue, "status")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(("Redis ", "Valkey "))
    assert "(master, single)" in lines[0]
    jobs = next(line.split() for line in lines if line.startswith("jobs"))
    mail = next(line.split() for line in lines if line.startswith("mail"))
    assert jobs[:5] == ["jobs", "workers", "10", "2", "4"]  # length, lag, pending
    assert jobs[-3] == "2"  # dead letters
    assert mail[:5] == ["mail", "senders", "3", "3", "0"]


def test_status_json_is_complete_and_exact(queue: str) -> None:
    run = cli(queue, "status", "--json")
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["server"]["role"] == "master"
    assert "pw" not in found["url"]
    streams = {s["name"]: s for s in found["streams"]}
    assert set(streams) == {"jobs", "mail"}
    (workers,) = streams["jobs"]["groups"]
    assert (workers["lag"], workers["lag_exact"], workers["pending"]) == (2, True, 4)
    assert workers["deliveries"] == [[2, 4]]  # claimed once more by 'holder'
    assert workers["oldest_pending_age_ms"] >= 0
    consumers = {c["name"]: c["pending"] for c in workers["consumers"]}
    assert consumers["holder"] == 4
    assert consumers["gone"] == 0
    assert streams["jobs"]["dead_letters"] == 2
    assert streams["jobs"]["oldest_dead_letter_age_ms"] >= 0
    assert streams["mail"]["dead_letters"] == 0


def test_a_lag_redis_does_not_give_is_counted(queue: str) -> None:
    # XDEL inside the group's range makes XINFO GROUPS answer nil for lag.
    with admin(queue) as client:
        undelivered = [e[0] for e in client.xrange("mail", count=1) or () if e[0] is not None]
        client.xdel("mail", *undelivered)
    found = json.loads(cli(queue, "status", "--json", "--stream", "mail").stdout)
    (senders,) = found["streams"][0]["groups"]
    assert (senders["lag"], senders["lag_exact"]) == (2, True)


def test_status_watch_refreshes_until_interrupted(queue: str) -> None:
    process = interruptible(queue, "status", "--watch", "0.2")
    time.sleep(2.5)
    out, err = interrupt(process)
    assert process.returncode == 0, err
    assert out.count("workers") >= 1


def test_pending_names_who_holds_what(queue: str) -> None:
    run = cli(queue, "pending", "--stream", "jobs")
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines()[1:]]
    assert len(rows) == 4
    assert {row[3] for row in rows} == {"holder"}
    assert {row[-1] for row in rows} == {"2"}


def test_consumers_list_shows_pending_idle_and_inactive(queue: str) -> None:
    run = cli(queue, "consumers", "list", "--stream", "jobs")
    assert run.returncode == 0, run.stderr
    cells = [re.split(r"\s{2,}", line.strip()) for line in run.stdout.splitlines()]
    assert cells[0] == ["stream", "group", "consumer", "pending", "idle", "inactive"]
    rows = {row[2]: row for row in cells[1:] if row[:2] == ["jobs", "workers"]}
    assert rows["holder"][3] == "4"
    assert rows["gone"][3] == "0"
    assert rows["gone"][5] == "-"  # it never received an entry
    with admin(queue) as client:
        version = tuple(int(n) for n in client.info("server")["redis_version"].split(".")[:2])
    if version >= (7, 2):  # XINFO CONSUMERS says since when it got nothing
        assert rows["holder"][5].endswith(("ms", " s")), rows["holder"]
    else:
        assert rows["holder"][5] == "-"
    found = json.loads(cli(queue, "status", "--json", "--stream", "jobs").stdout)
    inactive = {c["name"]: c["inactive_ms"] for c in found["streams"][0]["groups"][0]["consumers"]}
    assert inactive["gone"] is None
    assert (inactive["holder"] is not None) == (version >= (7, 2))


def test_health_exit_codes_and_one_line(queue: str) -> None:
    ok = cli(queue, "health", "--max-lag", "100", "--max-dlq", "5")
    assert (ok.returncode, ok.stdout.count("\n")) == (0, 1), ok.stderr
    assert ok.stdout.startswith("OK: 2 streams, 2 groups; max lag 3 (mail/senders)")
    bad = cli(queue, "health", "--max-lag", "2", "--max-dlq", "1", "--max-pending-age", "3600")
    assert bad.returncode == 1
    assert bad.stdout.startswith("UNHEALTHY: ")
    assert "lag 3 > 2 on mail/senders" in bad.stdout
    assert "2 dead letters > 1 on jobs" in bad.stdout
    assert "oldest pending" in bad.stdout  # in the summary; under the hour given
    down = cli("redis://127.0.0.1:1/0", "health")
    assert down.returncode == 2
    assert down.stdout.startswith("UNKNOWN: cannot reach Redis at redis://127.0.0.1:1/0")


def test_bad_url_and_refused_permissions_are_clear_errors(server: RedisServer, queue: str) -> None:
    bad = cli("bogus://x", "status")
    assert bad.returncode == 2
    assert "bad configuration: REDIS_URL must start with" in bad.stderr
    with admin(server.url) as client:
        client.execute_command(  # type: ignore[no-untyped-call]
            "ACL", "SETUSER", "peek", "reset", "on", ">pw", "-@all", "~*", "+smembers", "+ping"
        )
    refused = cli(server.url.replace("redis://", "redis://peek:pw@"), "status")
    assert refused.returncode == 2
    assert "refused" in refused.stderr
    assert "'info'" in refused.stderr
    assert "pw@" not in refused.stderr


def dead(url: str) -> int:
    with admin(url) as client:
        return int(client.xlen("abe_redis:dlq:{jobs}:jobs"))


def test_dlq_list_show_and_filters(queue: str) -> None:
    listed = cli(queue, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    records = json.loads(listed.stdout)
    assert [(r["source_stream"], r["error"], r["payload"]) for r in records] == [
        ("jobs", "boom", {"n": 0}),
        ("jobs", "boom", {"n": 1}),
    ]
    table = cli(queue, "dlq", "list")
    assert table.stdout.count("boom") == 2
    assert cli(queue, "dlq", "list", "--reason", "nothing like it").stdout.strip() == (
        "no dead letters match"
    )
    assert len(json.loads(cli(queue, "dlq", "list", "--json", "--since", "1h").stdout)) == 2
    assert json.loads(cli(queue, "dlq", "list", "--json", "--until", "1h").stdout) == []
    one = records[1]["id"]
    assert len(json.loads(cli(queue, "dlq", "list", "--json", "--id", one).stdout)) == 1
    shown = cli(queue, "dlq", "show", records[0]["source_id"])
    assert json.loads(shown.stdout)["payload"] == {"n": 0}
    assert cli(queue, "dlq", "show", "1-1").returncode == 2
    assert cli(queue, "dlq", "list", "--since", "yesterday").returncode == 2


def test_dlq_replay_asks_first_then_moves_each_record_once(queue: str) -> None:
    dry = cli(queue, "dlq", "replay", "--dry-run")
    assert dry.returncode == 0
    assert "dry run: 2 would be replayed; nothing changed" in dry.stdout
    refused = cli(queue, "dlq", "replay")  # no terminal to ask at, no --yes
    assert refused.returncode == 2
    assert "add --yes" in refused.stdout
    assert dead(queue) == 2
    done = cli(queue, "dlq", "replay", "--yes", "--id", json.loads(
        cli(queue, "dlq", "list", "--json").stdout)[0]["id"])  # fmt: skip
    assert done.returncode == 0
    assert "1 dead letter replayed" in done.stdout
    assert dead(queue) == 1
    with admin(queue) as client:
        assert client.xlen("jobs") == 11  # the replayed one is a new entry
    purged = cli(queue, "dlq", "purge", "--yes")
    assert "1 dead letter purged" in purged.stdout
    assert dead(queue) == 0


def test_consumers_prune_deletes_only_the_idle_and_empty(queue: str) -> None:
    time.sleep(0.3)
    dry = cli(queue, "consumers", "prune", "--idle", "0.2", "--dry-run", "--stream", "jobs")
    assert dry.returncode == 0, dry.stderr
    listed = dry.stdout.splitlines()[0]
    assert listed.startswith("jobs/workers: ")
    assert "gone" in listed
    assert "holder" not in listed
    run = cli(queue, "consumers", "prune", "--idle", "0.2", "--yes", "--stream", "jobs")
    assert run.returncode == 0, run.stderr
    with admin(queue) as client:
        names: list[Any] = [c["name"] for c in client.xinfo_consumers("jobs", "workers")]
    assert "holder" in [n.decode() if isinstance(n, bytes) else n for n in names]
    assert "gone" not in [n.decode() if isinstance(n, bytes) else n for n in names]


def test_an_interrupted_replay_loses_and_doubles_nothing(server: RedisServer) -> None:
    with admin(server.url) as client:
        client.flushall()
    settings = Settings(url=server.url, max_deliveries=1, block_ms=100, prefetch=500)
    total = 3000
    with SyncRedisQueue(settings) as q:
        q.publish_many("big", [{"n": n} for n in range(total)])
        with q.deliveries(group="g") as deliveries:
            for _ in range(total):
                next(deliveries).nack(error="boom")
    with admin(server.url) as client:
        assert client.xlen("abe_redis:dlq:{big}:big") == total
        client.xgroup_destroy("big", "g")  # replayed entries stay in the stream to count
    process = interruptible(server.url, "dlq", "replay", "--yes", "--stream", "big")
    with admin(server.url) as client:
        deadline = time.monotonic() + 30
        while client.xlen("big") < total + 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        out, err = interrupt(process)
        assert process.returncode == 130, out + err
        assert "interrupted after" in out
        left: Any = client.xrange("abe_redis:dlq:{big}:big")
        replayed: Any = client.xrange("big")[total:]  # type: ignore[index]
    kept = [json.loads(fields[b"data"])["n"] for _, fields in left]
    again = [json.loads(fields[b"data"])["n"] for _, fields in replayed]
    assert 0 < len(again) < total  # it was interrupted mid-way
    assert len(set(again)) == len(again)  # none replayed twice
    assert sorted(kept + again) == list(range(total))  # each once: moved or still there
