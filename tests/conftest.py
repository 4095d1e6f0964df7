from __future__ import annotations

import sys

# These modules import abstract-backend, which needs Python 3.12+; on older
# Pythons they are not collected at all (rather than skipped).
NEEDS_ABE = ["test_host_protocol.py", "integration/test_e2e_loader.py"]
collect_ignore_glob = [] if sys.version_info >= (3, 12) else NEEDS_ABE
