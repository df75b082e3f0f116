"""`power apply` asks no change of a node whose GPUs are all at their plan: cron's run between price steps.

cron runs `power apply` every few minutes; a node at plan used to get a second agent session (a login over SSH)
for a set that moved nothing. Such a node is now only read. What shows it without counting processes: another
change holding the node's limits lock (a `power set` under way, factoryctl.agent.limits_lock) used to make the
run wait on that lock and fail the node (exit 1), though nothing was to change there. Real agents on the simulated
driver (local transport); the test holds the simulated node's lock as another agent would.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_power_policy_live import TIERS, _prices

from factoryctl.agent.limits_lock import LimitsLock
from factoryctl.sim.storage import limits_lock_path


def tiers_at_150(root: Path) -> str:
    """prices.csv (150/MWh all day) and policy.yaml (80 % at or above 120/MWh) in `root`: a 560 W plan on an H100.

    Returns factory.yaml's `power:` section for them.
    """
    _prices(root / "prices.csv", lambda _hour: 150)
    (root / "policy.yaml").write_text(TIERS)
    return "power:\n  policy: policy.yaml\n  price_source: csv\n  prices: prices.csv\n"


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """n1 and n2, two H100s each, at 700 W; the policy plans 560 W."""
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  n[1-2]: {transport: local, sim: {profile: h100-sxm, gpus: 2}}\n" + tiers_at_150(tmp_path)
    )
    return path


@contextlib.contextmanager
def changing(factory: Path, *nodes: str) -> Iterator[None]:
    """Hold `nodes`' limits locks as another change of their limits under way would."""
    with contextlib.ExitStack() as stack:
        for node in nodes:
            lock = LimitsLock(limits_lock_path(factory.parent / "state" / "sim", "lab", node), private=False)
            stack.enter_context(lock.held(timeout_s=5))
        yield


def _audit(cli: Any, factory: Path) -> list[tuple[str, int, float, float]]:
    items = json.loads(cli("--config", str(factory), "audit", "-o", "json").stdout)["items"]
    return [(item["node"], item["gpu"], item["before_w"], item["after_w"]) for item in items]


def _apply(cli: Any, factory: Path, *args: str) -> Any:
    return cli("--config", str(factory), "power", "apply", "all", "--timeout", "2", *args)


def test_a_run_at_plan_lists_every_gpu_unchanged_without_asking_a_node_to_change(cli: Any, fleet: Path) -> None:
    assert _apply(cli, fleet).exit_code == 0  # every GPU from 700 W to its 560 W plan
    audited = _audit(cli, fleet)
    assert len(audited) == 4
    with changing(fleet, "n1", "n2"):
        again = _apply(cli, fleet, "-o", "json")
        table = _apply(cli, fleet)
    assert again.exit_code == 0, again.stderr
    document = json.loads(again.stdout)
    assert document["errors"] == []
    assert document["items"] == [
        {"node": node, "gpu": gpu, "before_w": 560.0, "enforced_w": 560.0, "clamped": False}
        for node in ("n1", "n2")
        for gpu in (0, 1)
    ]
    assert table.exit_code == 0, table.stderr
    assert table.stdout.splitlines()[1:] == ["n[1-2] (2)   0-1    560        560          no"]
    assert table.stderr == ""
    assert _audit(cli, fleet) == audited


def test_only_the_node_off_its_plan_is_changed_and_audited(cli: Any, fleet: Path) -> None:
    assert _apply(cli, fleet).exit_code == 0
    assert cli("--config", str(fleet), "power", "set", "n2/1", "--watts", "600").exit_code == 0
    audited = _audit(cli, fleet)
    with changing(fleet, "n1"):  # n1 is at plan: a change under way there is no reason to fail the run
        applied = _apply(cli, fleet, "-o", "json")
    assert applied.exit_code == 0, applied.stderr
    document = json.loads(applied.stdout)
    assert document["errors"] == []
    assert [(i["node"], i["gpu"], i["before_w"], i["enforced_w"]) for i in document["items"]] == [
        ("n1", 0, 560.0, 560.0),
        ("n1", 1, 560.0, 560.0),
        ("n2", 0, 560.0, 560.0),
        ("n2", 1, 600.0, 560.0),
    ]
    assert _audit(cli, fleet)[len(audited) :] == [("n2", 1, 600.0, 560.0)]
