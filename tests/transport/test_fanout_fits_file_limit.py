"""A fan-out never works on more nodes at once than the open-file limit has descriptors for.

At `ulimit -n 256` (soft and hard) the default `--fanout 64` over local simulated nodes peaked at 326 open
descriptors, and the nodes past the limit were reported down ("no file descriptor left"), exit 1. The fan-out is
now lowered to what fits (after raising the soft limit, when the hard one allows), silently for the default, with a
note on stderr for a `--fanout` the user gave (none under `-q`). The CLI runs in a child with a low hard limit.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

#: Soft and hard open-file limit of the child: room for a handful of local nodes at once, far from 30.
LIMIT = 60
NODES = 30
#: Sets the limit (argv[1]: the soft one, argv[2]: the hard one), then runs factoryctl's CLI in the same process.
WITH_LOW_LIMIT = """import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv.pop(1)), int(sys.argv.pop(1))))
from factoryctl.cli.entry import main
sys.argv[0] = "factoryctl"
main()
"""


def factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        f"  n[01-{NODES}]: {{transport: local, sim: h100-sxm, gpus: 1}}\n"
    )
    return path


def factoryctl(tmp_path: Path, *args: str, hard: int = LIMIT) -> subprocess.CompletedProcess[str]:
    """factoryctl run with the open-file limit LIMIT (soft), `hard` (hard)."""
    limits = [str(LIMIT), str(hard)]
    return subprocess.run(
        [sys.executable, "-c", WITH_LOW_LIMIT, *limits, "-c", str(factory(tmp_path)), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )


def test_the_default_fanout_is_lowered_to_fit_the_limit_and_every_node_is_up(tmp_path: Path) -> None:
    listed = factoryctl(tmp_path, "nodes", "-o", "json")
    assert (listed.returncode, listed.stderr) == (0, "")  # lowered silently: the user asked for nothing
    document = json.loads(listed.stdout)
    assert document["errors"] == []
    assert [item["node"] for item in document["items"]] == [f"n{i:02d}" for i in range(1, NODES + 1)]


def test_a_fanout_the_user_gave_is_lowered_with_a_note_except_under_quiet(tmp_path: Path) -> None:
    asked = factoryctl(tmp_path, "exec", "all", "-f", str(NODES), "--", "true")
    assert asked.returncode == 0, asked.stderr
    (note,) = asked.stderr.splitlines()
    assert note.startswith(f"factoryctl: note: --fanout {NODES} lowered to ")
    assert f"(ulimit -n is {LIMIT})" in note
    quiet = factoryctl(tmp_path, "-q", "exec", "all", "-f", str(NODES), "--", "true")
    assert (quiet.returncode, quiet.stderr) == (0, "")


def test_a_soft_limit_below_the_hard_one_is_raised_rather_than_the_fanout_lowered(tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"the hard open-file limit here ({hard}) leaves nothing to raise to")
    ran = factoryctl(
        tmp_path,
        "exec",
        "all",
        "-f",
        str(NODES),
        "--",
        "sh",
        "-c",
        "ulimit -n",
        hard=4096 if hard == resource.RLIM_INFINITY else min(hard, 4096),
    )
    assert (ran.returncode, ran.stderr) == (0, "")  # all at once, no note
    assert f"\n{LIMIT}\n" in ran.stdout  # the commands still get the user's soft limit
