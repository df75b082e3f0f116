"""A fan-out that runs out of threads still reports what the nodes it started did.

`RuntimeError: can't start new thread` while a fan-out started its nodes' threads went straight to the CLI boundary
("factoryctl: unexpected error: RuntimeError: can't start new thread", exit 1): `exec all -- echo hi` had run on the
nodes started but showed nothing, and `power set` had changed their GPUs but never listed them. Now the nodes not
started fail with the `local` error naming this machine's task limit, and the started ones are reported.

This machine's task limit is not reached for real (it would starve the rest of the machine): `threading.Thread.start`
refuses, as CPython does when the limit is reached, for the fan-out threads of nodes w4 to w8 only, so every fan-out
of a command starts w1 to w3 and then runs out. The whole CLI runs in this process over real agents on the simulated
driver (local transport).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

#: The nodes whose fan-out thread this machine "cannot start": every node after w3.
REFUSED = {f"fanout-w{i}" for i in range(4, 9)}
LOCAL_ERROR = "this machine cannot start another thread"


def factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  w[1-8]: {transport: local, sim: {profile: a100-sxm4-80gb, seed: 7, gpus: 1}}\n"
    )
    return path


@pytest.fixture
def out_of_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Thread.start` raises CPython's out-of-threads error for the fan-out threads of w4 to w8."""
    start = threading.Thread.start

    def refusing(thread: threading.Thread) -> None:
        if thread.name in REFUSED:
            raise RuntimeError("can't start new thread")
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", refusing)


def test_exec_prints_the_output_of_the_nodes_it_started(
    cli: Callable[..., Any], tmp_path: Path, out_of_threads: None
) -> None:
    result = cli("--config", str(factory(tmp_path)), "exec", "all", "-o", "json", "--", "echo", "hi")
    assert result.exit_code == 1, result.stderr  # a partial failure of kind `local`
    assert "unexpected error" not in result.stderr
    document = result.json()
    assert [(item["node"], item["stdout"]) for item in document["items"]] == [(f"w{i}", "hi\n") for i in (1, 2, 3)]
    assert [(error["node"], error["error"]) for error in document["errors"]] == [
        (f"w{i}", "local") for i in range(4, 9)
    ]
    assert all(error["message"].startswith(LOCAL_ERROR) for error in document["errors"])
    assert "hint: raise the limit (TasksMax=" in result.stderr


def test_power_set_lists_and_audits_the_gpus_it_changed(
    cli: Callable[..., Any], tmp_path: Path, out_of_threads: None
) -> None:
    config = str(factory(tmp_path))
    result = cli("--config", config, "power", "set", "all", "--watts", "300", "-o", "json")
    assert result.exit_code == 1, result.stderr
    assert "unexpected error" not in result.stderr
    assert f"w[4-8] (5): {LOCAL_ERROR}" in result.stderr
    changed = {item["node"] for item in result.json()["items"]}
    assert changed == {"w1", "w2", "w3"}
    audited = cli("--config", config, "audit", "-o", "json").json()["items"]
    assert sorted((entry["node"], entry["after_w"]) for entry in audited) == [(f"w{i}", 300.0) for i in (1, 2, 3)]
