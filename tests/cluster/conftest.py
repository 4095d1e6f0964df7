"""Cluster fixtures: a real 3-primary, 3-replica Redis Cluster per module."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ..helpers import reporter
from .servers import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.topology]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Three primaries with a replica each, on free loopback ports."""
    with LocalCluster() as made:
        yield made


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    """Print a figure into the test output even when output is captured."""
    return reporter(capsys, "cluster")
