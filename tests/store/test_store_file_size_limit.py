"""A file size limit (`ulimit -f`, systemd's LimitFSIZE) reached while writing is named, not a bare "disk I/O error".

A real SQLite file in a child process with RLIMIT_FSIZE set: write() fails with EFBIG there (Python ignores
SIGXFSZ), which SQLite reports as "disk I/O error".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHILD = """
import resource, sys
from pathlib import Path
from factoryctl.store.connection import StoreConnection, StoreError
store = StoreConnection(Path(sys.argv[1]))
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, resource.RLIM_INFINITY))
try:
    for i in range(2000):
        store.set_meta(f"k{i}", "x" * 4000)
except StoreError as exc:
    print(exc.message)
    print(exc.hint)
"""


def test_the_file_size_limit_is_named_with_what_was_not_saved(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "factory.db")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    message, hint = done.stdout.splitlines()
    assert message == (
        f"the store at {tmp_path / 'factory.db'} reached this process's file size limit (256 KiB: `ulimit -f`, "
        "systemd's LimitFSIZE=), so the value was not saved."
    )
    assert "ulimit -f unlimited" in hint
