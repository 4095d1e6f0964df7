"""The main job, as the README runs it: ``python -m abe_redis demo``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ..helpers import clean_env, run_demo

pytestmark = pytest.mark.integration
demo = run_demo


@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_the_demo_on_an_embedded_redis_server(loop: str) -> None:
    run = demo(clean_env(), "--loop", loop)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "embedded redis-server" in run.stdout
    assert "missing 0, duplicates 0, still pending 0" in run.stdout


def test_the_demo_falls_back_to_fakeredis_without_a_redis_server_binary() -> None:
    env = clean_env()
    env["PATH"] = str(Path(sys.executable).parent)  # python, but no redis-server
    env.pop("ABE_REDIS_SERVER", None)  # nor another engine's
    run = demo(env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "fakeredis' TCP server" in run.stdout
    assert "missing 0, duplicates 0, still pending 0" in run.stdout


def test_the_demo_on_a_configured_server(redis_url: str) -> None:
    run = demo({**clean_env(), "REDIS_URL": redis_url})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "configured REDIS_URL" in run.stdout
    assert "missing 0, duplicates 0, still pending 0" in run.stdout
