"""``python -m abe_redis``: see :mod:`abe_redis.cli`."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
