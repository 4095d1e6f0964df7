"""The API reference (docs/api.md, rendered by mkdocstrings) covers every
public name, and every public name and member has a docstring to render."""

from __future__ import annotations

import inspect
from pathlib import Path

import abe_redis

PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.md"
PUBLIC = [name for name in abe_redis.__all__ if name != "__version__"]


def test_every_public_name_is_on_the_reference_page() -> None:
    shown = {
        line.removeprefix("::: abe_redis.").strip()
        for line in PAGE.read_text().splitlines()
        if line.startswith("::: abe_redis.")
    }
    assert sorted(set(PUBLIC) - shown) == []
    assert sorted(shown - set(PUBLIC)) == []


def test_every_public_name_and_member_has_a_docstring() -> None:
    missing = []
    for name in PUBLIC:
        obj = getattr(abe_redis, name)
        if not inspect.getdoc(obj):
            missing.append(name)
        if not inspect.isclass(obj):
            continue
        for member, value in vars(obj).items():
            if member.startswith("_"):
                continue
            func = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
            if callable(func) and not inspect.getdoc(func):
                missing.append(f"{name}.{member}")
    assert missing == []
