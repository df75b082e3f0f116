"""`-L` of the nvidia-smi shim honours `-i` as the real nvidia-smi does: the selected GPUs, exit 6 for a bad one."""

from __future__ import annotations

import subprocess
import sys

from factoryctl.sim.state import SimNode


def _smi(state, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "factoryctl.sim.smi", "--node", "n1", "--state-dir", str(state), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_list_with_an_index_lists_that_gpu_and_refuses_a_missing_one(tmp_path):
    state = tmp_path / "state"
    SimNode(state, "n1", profile="h100-sxm", gpus=2)
    every = _smi(state, "-L")
    assert every.returncode == 0
    assert [line.split(":")[0] for line in every.stdout.splitlines()] == ["GPU 0", "GPU 1"]
    one = _smi(state, "-L", "-i", "1")
    assert one.returncode == 0, one.stderr
    assert one.stdout.splitlines() == [every.stdout.splitlines()[1]]
    missing = _smi(state, "-L", "-i", "9")
    assert missing.returncode == 6
    assert missing.stdout == ""
    assert "No devices were found matching the identifier '9'." in missing.stderr
