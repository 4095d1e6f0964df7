"""Sessions: tests (every supported Python), integration, lint, typecheck, docs, demo.

``nox`` alone runs tests, lint, typecheck and docs: the whole suite. Each
session is a thin wrapper over :func:`install`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
LOADER_PYTHON = "3.13"  # abstract-backend (the host loader) needs 3.12+

nox.options.sessions = ["tests", "tests_lowest", "engines", "lint", "typecheck", "docs"]
# Other server engines the integration and fault tests run against, each
# built once from Debian's source package by .ci/engines.sh (which holds
# their versions; the builds are cached outside the repo).
ENGINES = {"redis-8.0": "redis", "valkey-9.1": "valkey"}
nox.options.reuse_existing_virtualenvs = True
# On CI a missing interpreter fails the run instead of being skipped.
nox.options.error_on_missing_interpreters = bool(os.environ.get("CI"))


def _add_pyenv_interpreters() -> None:
    """Put each wanted pyenv Python on PATH so ``python3.X`` resolves to it."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = []
    for version in PYTHONS:
        bins = sorted(root.glob(f"{version}.*/bin"), key=lambda p: [int(x) for x in
                      p.parent.name.split(".") if x.isdigit()])  # fmt: skip
        if bins:
            found.append(str(bins[-1]))
    os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_add_pyenv_interpreters()


def install(session: nox.Session, *extras: str, tools: tuple[str, ...] = ()) -> None:
    """Install the package in editable mode with ``extras`` and ``tools``."""
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec, *tools)


# The SDK's in-memory reader and exporter check the telemetry (the otel
# extra needs only the API; the SDK follows the API's version).
TEST_TOOLS = ("pytest>=8", "opentelemetry-sdk", "opentelemetry-exporter-prometheus")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Unit, facade, plugin and integration tests against real redis-servers."""
    install(session, "trio", "fakeredis", "orjson", "otel", tools=TEST_TOOLS)
    session.run("pytest", *_fault_suite_on_newest(session), *session.posargs)


def _fault_suite_on_newest(session: nox.Session) -> tuple[str, ...]:
    """The newest Python runs everything, the fault and topology suites (a
    minute of waiting on servers, and clusters of six) included. The others
    run the unit and facade tests (on real servers too) but not
    tests/integration, which the newest Python, both lowest-versions runs
    (the oldest Python and the newest) and every engine cover: CI stays
    within its 25 minutes."""
    if session.python == PYTHONS[-1]:
        return ()
    return ("-m", "not faults and not topology and not integration")


LOWEST = Path("tests/lowest-versions.txt")


def _version(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in text.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def declared_floors() -> dict[str, tuple[int, ...]]:
    """``name>=version`` of every dependency and extra in pyproject.toml."""
    text = Path("pyproject.toml").read_text()
    project = text.split("[project]", 1)[1].split("[project.scripts]", 1)[0]
    found = re.findall(r'"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?>=([0-9][^";,\s]*)', project)
    return {name.lower().replace("_", "-"): _version(version) for name, version in found}


@nox.session(python=[PYTHONS[0], PYTHONS[-1]], name="tests_lowest")
def tests_lowest(session: nox.Session) -> None:
    """The whole suite with every dependency at its declared lowest version."""
    lines = [line for line in LOWEST.read_text().split("\n") if "==" in line]
    pins = {name: _version(version) for name, version in (line.split("==") for line in lines)}
    if pins != declared_floors():
        session.error(f"{LOWEST} does not match the floors in pyproject.toml: {declared_floors()}")
    install(session, "trio", "fakeredis", "orjson", "otel", tools=(*TEST_TOOLS, "-c", str(LOWEST)))
    # The fault and topology suites measure the servers and our flows, not
    # the floors: they run in tests-3.13 and on every engine.
    session.run("pytest", "-m", "not faults and not topology", *session.posargs)


@nox.session(python=LOADER_PYTHON)
def integration(session: nox.Session) -> None:
    """Only the tests that need a real redis-server."""
    install(session, "trio", "fakeredis", "orjson", "otel", tools=TEST_TOOLS)
    session.run("pytest", "-m", "integration", *session.posargs)


@nox.session(python=LOADER_PYTHON)
@nox.parametrize("engine", list(ENGINES))
def engines(session: nox.Session, engine: str) -> None:
    """The integration, fault and topology tests against another server
    engine, on asyncio: what they check here is the engine; trio against
    the same commands runs on Redis 7.0 in tests-3.13."""
    binary = session.run("bash", ".ci/engines.sh", ENGINES[engine], external=True, silent=True)
    assert isinstance(binary, str)
    install(session, "trio", "fakeredis", "orjson", "otel", tools=TEST_TOOLS)
    env = {"ABE_REDIS_SERVER": binary.strip().splitlines()[-1]}
    session.run("pytest", "-m", "integration", "-k", "not trio", *session.posargs, env=env)


@nox.session(python=LOADER_PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=LOADER_PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package and the tests."""
    tools = (*TEST_TOOLS, "mypy>=1.10", "nox")
    install(session, "trio", "fakeredis", "orjson", "otel", tools=tools)
    session.run("mypy")


@nox.session(python=LOADER_PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site with --strict."""
    session.install("mkdocs-material>=9", "mkdocstrings[python]>=0.26")
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", str(Path(session.create_tmp()) / "site")
    )


@nox.session(python=LOADER_PYTHON)
def demo(session: nox.Session) -> None:
    """The main job: publish and consume a burst through the host loader."""
    install(session, "fakeredis")
    session.run("python", "-m", "abe_redis", "demo", *session.posargs)


@nox.session(python=LOADER_PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmark against raw redis-py and abe-redis 0.1.0 (prints figures; asserts none)."""
    install(session, "trio", "orjson")
    session.run("python", "benchmarks/bench.py", *session.posargs)


@nox.session(python=LOADER_PYTHON, name="bench-cluster")
def bench_cluster(session: nox.Session) -> None:
    """The cluster row: one server against 3 primaries, 60 streams (prints figures)."""
    install(session, "orjson")
    session.run("python", "benchmarks/cluster.py", *session.posargs)


@nox.session(python=LOADER_PYTHON)
def profile(session: nox.Session) -> None:
    """CPU per consumed message, ours against the raw client, and a cProfile of ours."""
    install(session, "orjson")
    session.run("python", "benchmarks/profile_consume.py", "--profile", *session.posargs)


@nox.session(python=LOADER_PYTHON, name="profile-latency")
def profile_latency(session: nox.Session) -> None:
    """End-to-end latency split into the wire and the consumer's own code, ours against raw."""
    install(session, "orjson")
    session.run("python", "benchmarks/profile_latency.py", *session.posargs)


@nox.session(python=LOADER_PYTHON, name="cli-output")
def cli_output(session: nox.Session) -> None:
    """Rewrite docs/cli/ (the Operations page's real output) from a throwaway server."""
    install(session)
    session.run("python", "benchmarks/cli_output.py", *session.posargs)


@nox.session(python=LOADER_PYTHON, name="settings-table")
def settings_table(session: nox.Session) -> None:
    """Rewrite the settings tables of the README and the docs from abe_redis/config.py."""
    install(session)
    session.run("python", "-c", SETTINGS_TABLE_SCRIPT)


SETTINGS_TABLE_SCRIPT = """
from pathlib import Path
from abe_redis.config import configuration_table
START = "<!-- settings table: generated from abe_redis/config.py (nox -s settings-table) -->\\n"
END = "<!-- end of settings table -->\\n"
for page in ("README.md", "docs/configuration.md"):
    path = Path(page)
    head, rest = path.read_text().split(START, 1)
    path.write_text(head + START + configuration_table() + END + rest.split(END, 1)[1])
"""
