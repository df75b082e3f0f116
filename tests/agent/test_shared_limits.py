"""Limits the agent and the controller must agree on, each kept twice because the agent ships alone.

The agent may import nothing of the controller's side (an import-linter contract), so a number both sides use is
written in both; these tests are what keeps the copies equal (test_tiers.py does the same for the slow tier).
"""

from __future__ import annotations

import re
from pathlib import Path

from factoryctl.agent import sampler
from factoryctl.telemetry import health

CLI_DOC = Path(__file__).parents[2] / "docs" / "cli.md"


def test_the_agent_and_the_controller_keep_as_many_xids_per_gpu():
    assert sampler.MAX_XIDS == health.MAX_XIDS


def test_the_documented_xid_limit_is_the_codes():
    text = " ".join(CLI_DOC.read_text(encoding="utf-8").split())
    said = re.search(r"at most (\d+) per GPU", text)
    assert said is not None, "docs/cli.md no longer says how many XIDs a GPU keeps"
    assert int(said.group(1)) == sampler.MAX_XIDS
