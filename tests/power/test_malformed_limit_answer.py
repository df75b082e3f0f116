"""A node whose answer to a change of its limits is malformed: its limits may have changed, never "none was changed".

The fuzzing review's finding: an answer without `index` made `power set` print `bad: KeyError: 'index'` and close with
`no power limit was changed.`, while `gpus bad` then showed the new limit on both GPUs. The node's `python` runs the
real agent on the simulated driver and drops `index` from each GPU of its power-limit answers (the review's
`evilpy2`); the store is a real SQLite file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

#: The node's `python`: the real agent, REWRITE applied to each answer's `result.gpus` entries.
FILTER = """#!{python}
import json, subprocess, sys
agent = subprocess.Popen([sys.executable] + sys.argv[1:], stdout=subprocess.PIPE)
for line in agent.stdout:
    message = json.loads(line)
    result = message.get("result")
    if isinstance(result, dict) and isinstance(result.get("gpus"), list) and "before_w" in str(result):
        {rewrite}
        line = (json.dumps(message) + "\\n").encode()
    sys.stdout.buffer.write(line)
    sys.stdout.flush()
"""
REWRITES = {
    "no index": 'result["gpus"] = [{k: v for k, v in g.items() if k != "index"} for g in result["gpus"]]',
    "index 10**19": 'result["gpus"] = [dict(g, index=10**19) for g in result["gpus"]]',
    "not objects": 'result["gpus"] = [str(g) for g in result["gpus"]]',
    "no list": 'message["result"] = 5',
}


def factory(tmp_path: Path, rewrite: str) -> Path:
    python = tmp_path / "filtered-python"
    python.write_text(FILTER.format(python=sys.executable, rewrite=rewrite))
    python.chmod(0o755)
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: t\nstate_dir: {tmp_path / 'state'}\n"
        f"nodes:\n  bad: {{transport: local, python: {python}, sim: {{profile: h100-sxm, gpus: 2, seed: 2}}}}\n"
    )
    return path


@pytest.mark.parametrize("how", sorted(REWRITES))
def test_a_malformed_answer_says_the_limits_may_have_changed(tmp_path: Path, cli: Any, how: str) -> None:
    config = str(factory(tmp_path, REWRITES[how]))
    result = cli("-c", config, "power", "set", "bad", "--watts", "300", "--reason", "test")
    assert result.exit_code == 1, result.stderr
    assert "bad: the agent sent a malformed answer to the change (" in result.stderr
    assert "its limits may have changed" in result.stderr
    assert "no power limit change was confirmed; the limits of 1 node(s) may have changed" in result.stderr
    assert "no power limit was changed" not in result.stderr
    assert "Error:" not in result.stderr  # no bare KeyError, TypeError, ...
    listed = cli("-c", config, "gpus", "bad", "-o", "json")
    assert [gpu["power_limit_w"] for gpu in listed.json()["items"]] == [300.0, 300.0]  # type: ignore[index]
