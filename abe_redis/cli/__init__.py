"""The abe-redis command (also python -m abe_redis): see the queue and steer it.

Configured by the backend's environment variables (``REDIS_URL`` and the
rest), ``--url`` first. Exit codes: 0 done (``health``: healthy), 1
``health`` found a threshold crossed, 2 the command could not run
(unreachable Redis, a bad URL, a refused permission, a refused
confirmation), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .. import __version__
from .._sync.backend import SyncRedisQueue
from ..errors import AbeRedisError
from . import dlq, inspect
from .demo import slack_event
from .output import EXIT_ERROR, console, error_text, settings

__all__ = ["main", "slack_event"]


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _filters(p: argparse.ArgumentParser, *, streams: bool = True) -> None:
    if streams:
        p.add_argument("--stream", action="append", help="only this stream (repeatable)")
    p.add_argument("--group", help="only records of this consumer group")
    p.add_argument("--reason", help="only records whose reason or error contains this text")
    p.add_argument("--since", help="dead-lettered at or after: ISO 8601, or an age (30m, 2h, 1d)")
    p.add_argument("--until", help="dead-lettered at or before: ISO 8601, or an age")
    p.add_argument("--id", action="append", help="only this record or entry id (repeatable)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="abe-redis", description=__doc__.split("\n\n")[0])
    top.add_argument("--version", action="version", version=f"abe-redis {__version__}")
    top.add_argument("--url", help="Redis URL (default: REDIS_URL)")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("status", help="length, lag, pending and dead letters of every stream")
    p.add_argument("--stream", action="append", help="only this stream (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--watch", type=_positive, nargs="?", const=2.0, metavar="SECONDS",
        help="refresh in place every SECONDS (default 2) until Ctrl-C",
    )  # fmt: skip

    p = sub.add_parser("pending", help="who holds which entries, how long, how often delivered")
    p.add_argument("--stream", action="append", help="only this stream (repeatable)")
    p.add_argument("--group", help="only this group")
    p.add_argument("--count", type=_count, default=20, help="entries per group (default 20)")

    p = sub.add_parser("health", help="one line and an exit code for probes (0, 1, 2)")
    p.add_argument("--stream", action="append", help="only this stream (repeatable)")
    p.add_argument("--max-lag", type=int, help="unhealthy above this many undelivered entries")
    p.add_argument(
        "--max-pending-age", type=float, metavar="SECONDS",
        help="unhealthy when an entry has been pending (since published) longer",
    )  # fmt: skip
    p.add_argument("--max-dlq", type=int, help="unhealthy above this many dead letters a stream")

    p = sub.add_parser("dlq", help="dead letters: list, show, replay, purge")
    dsub = p.add_subparsers(dest="dlq_command", required=True)
    q = dsub.add_parser("list", help="the dead letters the filters select")
    _filters(q)
    q.add_argument("--limit", type=_count, default=50, help="at most this many (default 50)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q = dsub.add_parser("show", help="one record in full, payload included")
    q.add_argument("record", help="the dead-letter record id (or the original entry id)")
    q.add_argument("--stream", help="the stream it came from (default: search all)")
    for name, what in (("replay", "re-publish to their streams"), ("purge", "delete for good")):
        q = dsub.add_parser(name, help=f"{what} the dead letters the filters select")
        _filters(q)
        q.add_argument(
            "--dry-run", action="store_true", help="say what would happen; change nothing"
        )
        q.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = sub.add_parser("consumers", help="each group's consumers; prune the idle ones")
    csub = p.add_subparsers(dest="consumers_command", required=True)
    q = csub.add_parser("list", help="each consumer: pending entries, idle and inactive time")
    q.add_argument("--stream", action="append", help="only this stream (repeatable)")
    q.add_argument("--group", help="only this group")
    q = csub.add_parser("prune", help="delete consumers idle past --idle with nothing pending")
    q.add_argument("--idle", type=_positive, required=True, metavar="SECONDS")
    q.add_argument("--stream", action="append", help="only this stream (repeatable)")
    q.add_argument("--group", help="only this group")
    q.add_argument("--dry-run", action="store_true", help="list them; delete nothing")
    q.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = sub.add_parser("demo", help="publish and consume a burst of Slack-like events")
    p.add_argument("--events", type=_count, default=5000, help="how many events (default 5000)")
    p.add_argument("--workers", type=_count, default=2, help="consumers in the group (default 2)")
    p.add_argument("--loop", choices=("asyncio", "trio"), default="asyncio", help="event loop")
    return top


def _command(args: argparse.Namespace) -> Callable[[SyncRedisQueue], int]:
    out = console()
    if args.command == "status":
        return lambda q: inspect.status(q, args)
    if args.command == "pending":
        return lambda q: inspect.pending(q, args)
    if args.command == "health":
        return lambda q: inspect.health(q, args)
    if args.command == "consumers" and args.consumers_command == "list":
        return lambda q: inspect.consumers(q, args, out)
    if args.command == "consumers":
        return lambda q: inspect.prune(q, args, out)
    name = args.dlq_command
    if name == "list":
        return lambda q: dlq.list_(q, args, out)
    if name == "show":
        return lambda q: dlq.show(q, args, out)
    return lambda q: dlq.act(q, args, out, replay=name == "replay")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit code."""
    args = parser().parse_args(argv)
    if args.command == "demo":
        from .demo import demo

        try:
            return demo(args.events, args.workers, args.loop)
        except AbeRedisError as exc:
            print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_ERROR
    target = args.url or "REDIS_URL"
    try:
        config = settings(args.url)
        target = config.redacted_url
        run = _command(args)
        with SyncRedisQueue(config) as queue:
            return run(queue)
    except (AbeRedisError, ValueError) as exc:
        line = error_text(exc, target)
        if args.command == "health":
            print(f"UNKNOWN: {line}")
        else:
            # One line whatever its length: logs and scripts read it whole.
            console(stderr=True).print(f"abe-redis {args.command}: {line}", soft_wrap=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
