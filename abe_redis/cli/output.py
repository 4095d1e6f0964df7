"""What the commands share: the settings from the environment and ``--url``,
the console, and how durations, times and errors read."""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from ..config import Settings
from ..errors import AbeRedisError, AccessDenied, ConfigError, ConnectError, TransportError

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
"""0: done (healthy); 1: a check failed (unhealthy); 2: could not do it at all."""


def settings(url: str | None) -> Settings:
    """The backend's settings from the environment, ``--url`` first.

    Raises:
        ConfigError: a variable or the URL is invalid (the message names it).
    """
    found = Settings.from_env()
    return dataclasses.replace(found, url=url) if url else found


def console(*, stderr: bool = False) -> Console:
    """A console: colours only on a terminal (and never with ``NO_COLOR``); wide
    lines when the output is a file or a pipe, so that tables do not wrap."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else int(os.environ.get("COLUMNS") or 160)
    return Console(file=stream, width=width, highlight=False, markup=False, soft_wrap=False)


def table(*columns: str, right: tuple[str, ...] = ()) -> Table:
    """A borderless table, bold headings, no cell wrapped; ``right``: the
    columns aligned right (figures)."""
    made = Table(box=None, header_style="bold", pad_edge=False)
    for name in columns:
        made.add_column(name, justify="right" if name in right else "left", no_wrap=True)
    return made


def error_text(exc: BaseException, target: str) -> str:
    """One line saying what went wrong, in the words an operator needs."""
    kind = type(exc).__name__
    if isinstance(exc, ConfigError):
        return f"bad configuration: {exc}"
    if isinstance(exc, AccessDenied):
        return f"Redis at {target} refused: {exc}"
    if isinstance(exc, ConnectError | TransportError):
        # The connection's own message names the address too: not twice.
        reason = str(exc).removeprefix(f"cannot connect to Redis at {target}: ")
        return f"cannot reach Redis at {target}: {reason} ({kind})"
    if isinstance(exc, AbeRedisError):
        return f"{kind}: {exc}"
    return str(exc)  # a bad argument (a time, ...): the message says which


def duration(ms: int | float | None) -> str:
    """``850 ms``, ``12.3 s``, ``5 m 3 s``, ``2 h 4 m``, ``3 d 2 h``; ``-`` for None."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(s), 60)
    if m < 60:
        return f"{m} m {s} s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h} h {m} m"
    d, h = divmod(h, 24)
    return f"{d} d {h} h"


def when(ms: int) -> str:
    """A server time in ms as UTC ISO 8601 to the second."""
    at = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def time_bound(text: str, now_ms: int) -> int:
    """``--since``/``--until``: an ISO 8601 time (UTC unless it says), or a
    duration ago (``30m``, ``2h``, ``1d``); in ms.

    Raises:
        ValueError: neither (the message shows both forms).
    """
    ago = _AGO.match(text.strip())
    if ago:
        return now_ms - int(float(ago[1]) * _UNIT_MS[ago[2]])
    try:
        at = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: give ISO 8601 (2026-12-07T10:00) or an age (30m, 2h, 1d)"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=datetime.timezone.utc)
    return int(at.timestamp() * 1000)


def plain(value: Any) -> Any:
    """A dataclass tree as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def confirmed(args: Any, question: str, out: Console) -> bool:
    """``--yes``, or a yes typed at a terminal; never a yes assumed elsewhere."""
    if getattr(args, "yes", False):
        return True
    if not sys.stdin.isatty():
        out.print(f"{question} Not a terminal: add --yes to go ahead.")
        return False
    answer = out.input(f"{question} [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def plural(n: int, word: str) -> str:
    """``1 group``, ``2 groups``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
