"""Controller tests may use the real sshd fixture (tests/sshd_fixture.py) for SSH faults."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sshd_fixture import SshdServer, sshd_factory  # noqa: F401
