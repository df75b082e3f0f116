"""`power apply` starts one agent per node: it reads the GPUs and, where one is off its plan, sets them in it.

cron runs `power apply` every few minutes. It used to start two agents on every node, at plan too (one to read the
GPUs for the plan, one for a set that moved nothing): over SSH, two logins per node per run. Counted with the
wrapper `python:` of test_power_set_one_session.py (it logs each agent's start and how many were alive then).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_power_set_one_session import agent_starts, counted_fleet
from test_s28_apply_at_plan import tiers_at_150


def policy_fleet(tmp_path: Path, nodes: int) -> tuple[Path, Path]:
    """`counted_fleet` with a tiers policy at 150/MWh all day (`tiers_at_150`): 560 W an H100."""
    config, log = counted_fleet(tmp_path, nodes)
    with config.open("a") as factory:
        factory.write(tiers_at_150(tmp_path))
    return config, log


def _apply(cli: Any, config: Path, *args: str) -> Any:
    applied = cli("--config", str(config), "power", "apply", "all", "-o", "json", *args)
    assert applied.exit_code == 0, applied.stderr
    return applied.json()


def test_a_price_step_and_a_run_at_plan_start_one_agent_per_node(cli: Any, tmp_path: Path) -> None:
    config, log = policy_fleet(tmp_path, 3)
    step = _apply(cli, config)  # every GPU from 700 W to its 560 W plan
    assert {(item["before_w"], item["enforced_w"]) for item in step["items"]} == {(700.0, 560.0)}
    assert agent_starts(log)[0] == {"n1": 1, "n2": 1, "n3": 1}  # read, then set in the same session
    at_plan = _apply(cli, config)
    assert {(item["before_w"], item["enforced_w"]) for item in at_plan["items"]} == {(560.0, 560.0)}
    assert len(at_plan["items"]) == 6
    assert agent_starts(log)[0] == {"n1": 1, "n2": 1, "n3": 1}  # read only
    audit = cli("--config", str(config), "audit", "-o", "json").json()["items"]
    assert len(audit) == 6  # the step's changes; the run at plan none


def test_a_fleet_larger_than_the_fanout_holds_no_more_sessions_than_it(cli: Any, tmp_path: Path) -> None:
    """Past `--fanout`, the nodes it cannot hold are read first and open a second session for their change."""
    config, log = policy_fleet(tmp_path, 4)
    _apply(cli, config, "--fanout", "2")
    per_node, most_alive = agent_starts(log)
    assert per_node == {"n1": 1, "n2": 1, "n3": 2, "n4": 2}
    assert most_alive <= 2
    _apply(cli, config, "--fanout", "2")  # at plan: every node read once, the held sessions let go
    per_node, most_alive = agent_starts(log)
    assert per_node == {"n1": 1, "n2": 1, "n3": 1, "n4": 1}
    assert most_alive <= 2
