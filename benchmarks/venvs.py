"""Peers in venvs of their own: the old plugin, FastStream and taskiq-redis.

Each is installed once into a venv under ``~/.cache/abe-redis-bench`` (outside
the repository; ``ABE_REDIS_BENCH_CACHE`` moves it) and run as a script that
prints one JSON object. The old plugin needs its own venv because it is also
called abe-redis; the others so that their dependencies do not mix with ours.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("ABE_REDIS_BENCH_CACHE", Path.home() / ".cache" / "abe-redis-bench"))

# name -> (Python version or None for this interpreter, packages, script, script args)
PEERS: dict[str, tuple[str | None, tuple[str, ...], str, tuple[str, ...]]] = {
    "old plugin": ("3.12", ("abe-redis==0.1.0", "redis[hiredis]"), "old_plugin.py", ()),
    "FastStream": (None, ("faststream[redis]", "hiredis"), "peers.py", ("faststream",)),
    "taskiq-redis": (None, ("taskiq-redis", "hiredis"), "peers.py", ("taskiq",)),
}


def interpreter(version: str | None) -> str | None:
    """A Python of ``version`` (pyenv's first: its shims fail unless selected)."""
    if version is None:
        return sys.executable
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(root.glob(f"{version}.*/bin/python{version}"))
    if candidates:
        return str(candidates[-1])
    return shutil.which(f"python{version}")


def venv(name: str) -> Path | str:
    """The peer's venv Python, installed on first use; or why it is not available."""
    version, packages, _, _ = PEERS[name]
    python = interpreter(version)
    if python is None:
        return f"no Python {version} found"
    folder = CACHE / name.replace(" ", "-").lower()
    marker = folder / "installed.txt"
    wanted = "\n".join(packages)
    if not marker.exists() or marker.read_text() != wanted:
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(folder)], check=True)
        done = subprocess.run(
            [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", *packages],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            return f"could not install {' '.join(packages)}: {done.stderr.strip()[-200:]}"
        marker.write_text(wanted)
    return folder / "bin" / "python"


def installed(name: str) -> str:
    """The peer's version, as its venv reports it."""
    python = venv(name)
    if isinstance(python, str):
        return "n/a"
    package = PEERS[name][1][0].split("[")[0].split("=")[0]
    out = subprocess.run(
        [str(python), "-m", "pip", "show", package], capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return "?"


def run(name: str, url: str, n: int) -> dict[str, float] | str:
    """One measurement of the peer; its figures, or why it failed."""
    python = venv(name)
    if isinstance(python, str):
        return python
    _, _, script, args = PEERS[name]
    done = subprocess.run(
        [str(python), str(HERE / script), *args, url, str(n)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        return f"{name} run failed: {done.stderr.strip()[-300:]}"
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
