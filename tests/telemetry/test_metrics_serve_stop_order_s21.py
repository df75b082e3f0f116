"""`metrics serve`'s first stop decides its exit status: a Ctrl-C right after a SIGTERM leaves SIGTERM's clean 0.

A SIGTERM (`systemctl stop`) and then, 10 ms later, a Ctrl-C (the same terminal's user, a `timeout -s INT`)
exited 130, `systemctl stop` leaving the unit failed: the SIGTERM was taken by the daemon's own handler, the Ctrl-C
by the CLI's, which knew nothing of it and raised. A Ctrl-C first still exits 130, as any command's.

A real process each: the CLI's `main`, each signal raised (C's raise()) at the first call of the function named, so
that it lands right there, as tests/foundation/test_stop_after_the_outcome.py does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from stop_children import SIGNALS_AT_CALLS, one_node_factory, run_script

SERVE = "metrics serve --port 0 --address 127.0.0.1"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return one_node_factory(tmp_path)


def test_a_ctrl_c_after_sigterm_keeps_the_clean_stop(config: Path) -> None:
    child = run_script(
        SIGNALS_AT_CALLS,
        config,
        SERVE,
        "factoryctl.cli.metrics_http.listen:SIGTERM",  # the clean stop is in place: it stops serving
        "factoryctl.cli.metrics.url_host:SIGINT",  # then a Ctrl-C, before the stop has ended it
    )
    assert child.returncode == 0, child.stderr
    assert child.stderr.splitlines()[-1] == "metrics serve: stopped (SIGTERM)", child.stderr


def test_a_ctrl_c_first_still_exits_130(config: Path) -> None:
    child = run_script(
        SIGNALS_AT_CALLS,
        config,
        SERVE,
        "factoryctl.cli.metrics_http.listen:SIGINT",
        "factoryctl.cli.metrics.url_host:SIGTERM",
    )
    assert child.returncode == 130, child.stderr
    assert "Traceback" not in child.stderr
