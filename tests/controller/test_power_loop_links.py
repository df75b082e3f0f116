"""The power loop does not log in to a node whose controller link is down: it waits for the link.

Fault review: a node down (or hung) cost every run a 15 s login attempt, and a controller's SIGTERM waited for it.
While the links come up after the controller's start, such a node is tried again within seconds, not a whole
`power.interval` later.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from factoryctl.config import load_config
from factoryctl.power.policy_loop import LINK_DOWN, LINK_RETRY_S, LINKS_STARTING_S, PowerLoop


def _config(tmp_path: Path) -> Path:
    now = int(time.time()) // 3600 * 3600
    stamps = [datetime.fromtimestamp(now + h * 3600, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for h in (-2, 2)]
    (tmp_path / "prices.csv").write_text(f"timestamp_utc,price_per_mwh\n{stamps[0]},150\n{stamps[1]},150\n")
    (tmp_path / "policy.yaml").write_text("policy: tiers\ntiers:\n  - {above_per_mwh: 120, cap_pct: 80}\n")
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: ll\nstate_dir: {tmp_path / 'state'}\nssh: {{connect_timeout_s: 30}}\n"
        "nodes:\n  s1: {host: 192.0.2.1}\n"  # TEST-NET: a login would wait out its whole timeout
        "power:\n  policy: policy.yaml\n  price_source: csv\n  prices: prices.csv\n"
    )
    return path


def test_a_node_without_a_link_is_not_logged_in_to_and_retried_soon_while_links_start(tmp_path: Path) -> None:
    ticks = [1000.0]
    loop = PowerLoop(load_config(_config(tmp_path)), 300.0, sessions=lambda node: None, monotonic=lambda: ticks[0])
    began = time.monotonic()
    run = loop.run_once()
    assert time.monotonic() - began < 10  # no login: one would wait 30 s on a TEST-NET address
    assert run.failure is None
    assert [(e.node, e.message) for e in run.errors] == [("s1", LINK_DOWN)]
    assert run.next_boundary_s is not None
    assert run.next_boundary_s <= run.at + LINK_RETRY_S
    ticks[0] += LINKS_STARTING_S  # links long up: a node still without one waits for the next run
    later = loop.run_once()
    assert later.next_boundary_s is not None
    assert later.next_boundary_s > later.at + LINK_RETRY_S
