"""`power set` while another change holds the node's limits: refused within its own --timeout, and never late.

The agent waits for the node's limits lock (factoryctl.agent.limits_lock) only as long as the request leaves it: a
longer wait could set the limit after factoryctl gave up on the request, unseen and unaudited. Real agents on the
simulated driver (local transport); the test holds the simulated node's lock as another agent would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from factoryctl.agent.limits_lock import LimitsLock
from factoryctl.sim.storage import limits_lock_path

FACTORY = """\
name: lab
state_dir: {state}
nodes:
  n1: {{transport: local, sim: {{profile: l40s, gpus: 1}}}}
"""


def test_a_set_waiting_on_a_held_lock_is_refused_within_its_timeout_and_sets_nothing_later(
    cli: Any, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    factory = tmp_path / "factory.yaml"
    factory.write_text(FACTORY.format(state=state))
    assert cli("--config", str(factory), "power", "set", "n1", "--watts", "300").exit_code == 0
    lock = LimitsLock(limits_lock_path(state / "sim", "lab", "n1"), private=False)
    with lock.held(timeout_s=5):
        started = time.monotonic()
        refused = cli("--config", str(factory), "power", "set", "n1", "--watts", "250", "--timeout", "3", "-o", "json")
        waited = time.monotonic() - started
        assert refused.exit_code == 1, refused.stderr
        [error] = json.loads(refused.stdout)["errors"]
        assert error["error"] == "driver"
        assert error["node"] == "n1"
        assert error["message"].startswith("another change of its power limits was still running after 2 s")
        assert f"factoryctl: n1: {error['message']}" in refused.stderr.splitlines()
        assert error["message"].endswith("; nothing was changed: try again once it has ended.")  # not a timeout
        assert "run the command again once it has ended, or give it a longer --timeout" in refused.stderr
        assert "(the node waits 1 s less than the --timeout, 60 s at most)." in refused.stderr
        time.sleep(max(0.0, 4.5 - waited))  # past the old 5 s wait: a late set would have happened by now
    gpus = json.loads(cli("--config", str(factory), "gpus", "n1", "-o", "json").stdout)["items"]
    assert [gpu["power_limit_w"] for gpu in gpus] == [300.0]
    audit = json.loads(cli("--config", str(factory), "audit", "-o", "json").stdout)["items"]
    assert [entry["after_w"] for entry in audit] == [300.0]
