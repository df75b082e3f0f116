"""A Ctrl-C while the CLI is still being imported is said like any stop, not as a KeyboardInterrupt traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from factoryctl.cli import entry
from factoryctl.cli.signals import STOPPED_HINTS
from factoryctl.errors import ExitCode

#: Runs the console script's entry with Ctrl-C arriving as `factoryctl.cli.app` is imported.
INTERRUPTED_IMPORT = textwrap.dedent(
    """
    import sys

    class CtrlC:
        def find_spec(self, name, path=None, target=None):
            if name == "factoryctl.cli.app":
                raise KeyboardInterrupt
            return None

    sys.meta_path.insert(0, CtrlC())
    from factoryctl.cli.entry import main
    main()
    """
)


def test_a_ctrl_c_while_the_cli_loads_exits_130_with_the_sentence_and_hint() -> None:
    result = subprocess.run([sys.executable, "-c", INTERRUPTED_IMPORT], capture_output=True, text=True, timeout=60)
    assert result.returncode == 130
    assert result.stderr == entry._INTERRUPTED
    assert "Traceback" not in result.stderr


def test_the_sentence_is_the_one_every_stop_uses() -> None:
    assert f"factoryctl: interrupted\nhint: {STOPPED_HINTS[ExitCode.INTERRUPTED]}\n" == entry._INTERRUPTED


def test_python_dash_m_and_the_script_run_the_same_entry() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "factoryctl", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("factoryctl")
