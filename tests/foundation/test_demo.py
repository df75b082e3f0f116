"""`factoryctl demo` without a terminal: the dashboard's usage error, never an endless run (--headless is the way)."""

from __future__ import annotations

import subprocess
import sys


def test_demo_without_a_terminal_is_the_dashboards_usage_error(tmp_path):
    """The reported case (stdin /dev/null, stdout a file, no --headless) ran forever; like `dash`, it is exit 2 with
    the same sentence, and a hint at --headless. A real process with a time limit, so a regression cannot hang."""
    out = tmp_path / "out"
    with out.open("wb") as sink:
        done = subprocess.run(
            [sys.executable, "-m", "factoryctl", "demo", "--duration", "2"],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.PIPE,
            timeout=30,
            check=False,
        )
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert "the dashboard needs a terminal, and standard output is not one." in err
    assert "hint: without a terminal add --headless" in err
    assert "Traceback" not in err
    assert out.read_bytes() == b""
