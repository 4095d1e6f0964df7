"""The settings tables of the README and the docs are the one declaration, rendered."""

from __future__ import annotations

from pathlib import Path

import pytest

from abe_redis.config import configuration_table

ROOT = Path(__file__).parents[1]
START = "<!-- settings table: generated from abe_redis/config.py (nox -s settings-table) -->\n"
END = "<!-- end of settings table -->\n"


@pytest.mark.parametrize("page", ["README.md", "docs/configuration.md"])
def test_the_settings_table_is_generated_from_settings(page: str) -> None:
    text = (ROOT / page).read_text()
    assert text.count(START) == 1, f"{page} has no settings table markers"
    shown = text.split(START, 1)[1].split(END, 1)[0]
    assert shown == configuration_table(), (
        f"{page}'s settings table is out of date: run `nox -s settings-table`"
    )
