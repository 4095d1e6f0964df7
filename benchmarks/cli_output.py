"""The real output of the ``abe-redis`` commands for the Operations page.

Starts a throwaway redis-server, gives it a queue with something to show
(a lagging group, held entries, dead letters, an idle consumer), runs each
command as a user would, and writes what it printed to ``docs/cli/*.txt``
(included by docs/operations.md) and the status table as a terminal
picture to ``docs/cli/status.svg``.

    ABE_REDIS_SERVER=/path/to/redis-8/redis-server python benchmarks/cli_output.py

(without ``ABE_REDIS_SERVER``, the ``redis-server`` on the PATH; the docs'
output comes from Redis 8.0, which reports consumers' inactive time).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from abe_redis import Settings, SyncRedisQueue
from abe_redis.cli.inspect import status_view
from abe_redis.embedded import RedisServer

OUT = Path(__file__).resolve().parent.parent / "docs" / "cli"
COMMANDS = {
    "status": ["status"],
    "pending": ["pending", "--stream", "slack_events", "--count", "3"],
    "health-ok": ["health", "--max-lag", "1000", "--max-pending-age", "300", "--max-dlq", "10"],
    "health-bad": ["health", "--max-lag", "100", "--max-dlq", "1"],
    "health-down": ["--url", "redis://127.0.0.1:1/0", "health"],
    "dlq-list": ["dlq", "list"],
    "dlq-replay-dry": ["dlq", "replay", "--reason", "timeout", "--dry-run"],
    "dlq-replay": ["dlq", "replay", "--reason", "timeout", "--yes"],
    "consumers": ["consumers", "list", "--stream", "slack_events"],
    "prune": ["consumers", "prune", "--idle", "1", "--dry-run"],
}


def prepare(url: str) -> None:
    settings = Settings(url=url, max_deliveries=2, block_ms=100, prefetch=40, read_ahead=False)
    with SyncRedisQueue(settings) as q:
        for n in range(60):
            q.publish("slack_events", {"event_id": f"Ev{n:04d}", "type": "message"})
        with q.deliveries(group="workers") as deliveries:
            for i in range(40):
                delivery = next(deliveries)
                if i < 3:
                    delivery.nack(error="TimeoutError: Slack API")
                elif i < 30:
                    delivery.ack()
            deliveries.close(drain_timeout=0)
        with q.deliveries(group="workers") as deliveries:
            for _ in range(3):  # the nacked ones, again: dead-lettered on this second failure
                next(deliveries).nack(error="TimeoutError: Slack API")
            deliveries.close(drain_timeout=0)
        for n in range(5):
            q.publish("_health_check", {"n": n})
        q.publish("audit", {"n": 1})


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with RedisServer() as server:
        prepare(server.url)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("REDIS_")},
            "REDIS_URL": server.url,
            "COLUMNS": "150",
        }
        for name, args in COMMANDS.items():
            run = subprocess.run(
                [sys.executable, "-m", "abe_redis", *args],
                env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
            )  # fmt: skip
            shown = "abe-redis " + " ".join(args).replace(server.url, "redis://...")
            printed = "".join(
                line.rstrip() + "\n" for line in (run.stdout + run.stderr).splitlines()
            )
            text = f"$ {shown}\n{printed}(exit code {run.returncode})\n"
            (OUT / f"{name}.txt").write_text(text.replace(str(server.port), "6379"))
            print(text)
        with SyncRedisQueue(Settings(url=server.url)) as q:
            found = q.status()
        picture = Console(record=True, width=110, file=open(os.devnull, "w"))  # noqa: SIM115
        picture.print(status_view(found, "redis://127.0.0.1:6379/0"))
        picture.save_svg(str(OUT / "status.svg"), title="abe-redis status")


if __name__ == "__main__":
    main()
