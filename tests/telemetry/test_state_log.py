"""The controller's log folds alike failures as one-shot commands do: one rule for both (model/folding.py)."""

from __future__ import annotations

import logging

import pytest

from factoryctl.model.folding import without_address
from factoryctl.telemetry.state_log import StateLog


def test_dns_failures_fold_into_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """Nodes whose names do not resolve say so with their own name: taken out, they are one line (a copy of the
    rule without "resolve" logged one line per node)."""
    log = logging.getLogger("test.state_log")
    states = StateLog(log)
    for node in ("g0001", "g0002", "g0003"):
        states.failure(node, f"{node}: cannot resolve {node}.lab: Name or service not known", logging.WARNING)
    with caplog.at_level(logging.WARNING, logger="test.state_log"):
        states.write(states.take())
    assert [r.getMessage() for r in caplog.records] == [
        "g[0001-0003] (3): cannot resolve its address: Name or service not known"
    ]
    assert without_address("cannot resolve g1.lab: x") == "cannot resolve its address: x"
