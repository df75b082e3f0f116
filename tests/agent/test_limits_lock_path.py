"""The lock-busy answer names the lock file by its absolute path, whatever the agent's `--state-dir` was.

An SSH node's agent runs in its cache directory with a relative state dir (`--state-dir ./sim`); the answer said
`it holds sim/<factory>/<node>.limits-lock`, which means nothing to someone looking on the node from elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from factoryctl.agent.limits_lock import LimitsLock


def test_a_relative_state_dir_gives_an_absolute_lock_path_in_the_answer(
    start_agent: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.chdir(cache)  # the agent starts here, as over SSH
    agent = start_agent("--sim", "h100-sxm", "--gpus", "2", "--state-dir", "./sim", node="a1", sim=None)
    assert agent.request("sample")["ok"]
    lock_file = cache / "sim" / "default" / "a1.limits-lock"
    monkeypatch.chdir(tmp_path)  # this test's own lock is taken from elsewhere
    with LimitsLock(lock_file, private=False).held(timeout_s=5):
        refused = agent.request("set_power_limit", gpus=[0], watts=300, lock_timeout_s=0.2)
    assert refused["ok"] is False, refused
    assert f"(it holds {lock_file});" in refused["error"]["message"], refused
