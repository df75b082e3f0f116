"""`power set / reset` by a user who is not root, on a simulated node whose driver wants root for setters.

Real NVML refuses `nvmlDeviceSetPowerManagementLimit` to non-root users (NVMLError_NoPermission); a node with
`sim: {setters_need_root: true}` does the same. The command is run end to end as a non-root user: as is when the
tests are not run as root, else as `nobody` (setpriv; allowed to read root's Python install, which changes nothing
the driver looks at: its euid). The node's failure is the driver's, in one sentence, with a hint that root is
needed; exit 1; nothing changes on any node but those asked, and nothing is audited.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_process import CLI_ARGV
from nonroot import as_non_root, give_to_non_root, needs_non_root, non_root_directory

pytestmark = needs_non_root

FACTORY = """\
name: lab
state_dir: {state}
nodes:
  locked: {{transport: local, sim: {{profile: h100-sxm, gpus: 2, setters_need_root: true}}}}
  open: {{transport: local, sim: {{profile: h100-sxm, gpus: 2}}}}
"""


@pytest.fixture
def home() -> Iterator[Path]:
    """A directory the non-root user owns (pytest's own are private to whoever runs the tests)."""
    with non_root_directory() as path:
        yield path


def factoryctl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user who is not root, with `home` as its home, config dir and caches."""
    config = home / "factory.yaml"
    if not config.exists():
        config.write_text(FACTORY.format(state=home / "state"))
        give_to_non_root(config)
    env = {**os.environ, "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1"}
    for var, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_STATE_HOME", ".state"), ("XDG_CACHE_HOME", ".cache")):
        env[var] = str(home / sub)
    argv = as_non_root([*CLI_ARGV, "--config", str(config), *args])
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=home, timeout=120, check=False)


def limits(home: Path) -> dict[tuple[str, int], float]:
    done = factoryctl(home, "gpus", "-o", "json")
    assert done.returncode == 0, done.stderr
    return {(g["node"], g["index"]): g["power_limit_w"] for g in json.loads(done.stdout)["items"]}


@pytest.mark.parametrize("command", [("set", "locked", "--watts", "300"), ("reset", "locked")])
def test_the_node_refuses_a_non_root_user_and_says_root_is_needed(home: Path, command: tuple[str, ...]) -> None:
    done = factoryctl(home, "power", *command, "-o", "json")
    assert done.returncode == 1, done.stderr
    listing = json.loads(done.stdout)
    assert listing["items"] == []
    assert listing["errors"] == [
        {
            "node": "locked",
            "error": "driver",
            "message": "setting a power limit needs root (GPU 0: insufficient permissions)",
        }
    ]
    said = "factoryctl: locked: setting a power limit needs root (GPU 0: insufficient permissions)"
    assert said in done.stderr.splitlines(), done.stderr
    hints = [line for line in done.stderr.splitlines() if line.startswith("hint: ")]
    assert len(hints) == 1, done.stderr
    assert "needs root on the node" in hints[0]
    assert "factoryctl: no power limit was changed." in done.stderr
    assert set(limits(home).values()) == {700.0}
    audit = factoryctl(home, "audit", "-o", "json")
    assert json.loads(audit.stdout)["items"] == [], audit.stderr


def test_the_other_nodes_are_set_and_only_they_are_audited(home: Path) -> None:
    done = factoryctl(home, "power", "set", "all", "--watts", "300", "-o", "json")
    assert done.returncode == 1, done.stderr
    listing = json.loads(done.stdout)
    assert [e["node"] for e in listing["errors"]] == ["locked"]
    assert {(i["node"], i["enforced_w"]) for i in listing["items"]} == {("open", 300.0)}
    assert limits(home) == {("locked", 0): 700.0, ("locked", 1): 700.0, ("open", 0): 300.0, ("open", 1): 300.0}
    audit = json.loads(factoryctl(home, "audit", "-o", "json").stdout)
    assert {entry["node"] for entry in audit["items"]} == {"open"}
