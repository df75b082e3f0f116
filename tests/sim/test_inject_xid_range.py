"""`factoryctl sim inject --xid N`: an XID is NVML's unsigned 64-bit event data; outside it is a usage error (exit 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from factoryctl.sim.faults import MAX_XID

FACTORY = "name: lab\nnodes:\n  ws: {transport: local, sim: {profile: h100-sxm, gpus: 4}}\n"


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(FACTORY)
    return path


@pytest.mark.parametrize("xid", [str(MAX_XID + 1), "99999999999999999999", "0", "-3"])
def test_an_xid_out_of_range_is_refused_before_any_node_is_asked(cli: Any, factory: Path, xid: str) -> None:
    result = cli("--config", str(factory), "sim", "inject", "ws/3", "--xid", xid)
    assert result.exit_code == 2, result.stderr
    assert f"--xid {xid} is not an XID code; nothing was injected." in result.stderr
    assert f"at most {MAX_XID}" in result.stderr
    assert result.stdout == ""


def test_the_largest_xid_is_injected(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "sim", "inject", "ws/3", "--xid", str(MAX_XID))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "ws: injected xid into GPU 3\n"
