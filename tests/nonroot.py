"""Run a test's process as a user who is not root, also when the tests themselves run as root (CI does).

What depends on who runs it (a driver that refuses setters to non-root users, file permissions that root ignores)
must be seen by a user it applies to. Run as root, the process is started as `nobody` through setpriv, allowed to
read root's files (the virtualenv, pytest's private temp dirs) and nothing more: that changes nothing the code under
test looks at, its euid and what it may write. Run as anyone else, the process is started as it is.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

NOBODY = 65534
SETPRIV = shutil.which("setpriv")
_CAN_READ = ("--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search")
#: The argv prefix that runs a command as nobody (no groups; may read, never write, what root owns).
AS_NOBODY = (SETPRIV or "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *_CAN_READ, "--")

#: Mark for a test that needs a non-root process: as root that takes setpriv.
needs_non_root = pytest.mark.skipif(
    os.geteuid() == 0 and SETPRIV is None, reason="as root, running as another user needs setpriv"
)


def as_non_root(argv: list[str]) -> list[str]:
    """`argv` run by a user who is not root: as it is, unless the tests run as root (then as nobody)."""
    return [*AS_NOBODY, *argv] if os.geteuid() == 0 else argv


def give_to_non_root(*paths: Path) -> None:
    """Make `paths` the non-root user's (nobody's, when the tests run as root; else they are already theirs)."""
    if os.geteuid() == 0:
        for path in paths:
            os.chown(path, NOBODY, NOBODY)


@contextmanager
def non_root_directory(prefix: str = "factoryctl-nonroot-") -> Iterator[Path]:
    """A fresh directory the non-root user owns and may write (pytest's own are private to whoever runs tests)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    give_to_non_root(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
