from __future__ import annotations

import sys

# The end-to-end tests drive the real abstract-backend loader, which needs
# Python 3.12+; on older Pythons they are not collected at all (not skipped).
collect_ignore_glob = [] if sys.version_info >= (3, 12) else ["integration/test_e2e_loader.py"]
