"""The agent's job-rank ops (`launch`, `ranks`, `kill`, `logs`: docs/agent-protocol.md), through the real zipapp.

A rank is a real detached process started by the zipapp's `rank-run` wrapper; it must outlive the agent that
launched it and be found, signalled and read by the next one. Every rank a test starts is killed after it
(`rank_reaper`), with its wrapper.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

from factoryctl.agent.ranks import is_process, start_ticks


@pytest.fixture(autouse=True)
def rank_reaper(tmp_path: Path) -> Iterator[None]:
    """After the test: KILL every rank's process group and wrapper recorded under the test's directory."""
    yield
    for record_path in tmp_path.rglob("record.json"):
        record = json.loads(record_path.read_text())
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record["pgid"], signal.SIGKILL)
        if is_process(record["wrapper_pid"], record["wrapper_start_ticks"]):
            os.kill(record["wrapper_pid"], signal.SIGKILL)


def launch(agent: Any, job: str = "j1", rank: int = 0, **fields: Any) -> dict[str, Any]:
    """The reply to a `launch` of `fields` (argv, env, gpus, cwd: defaults for those not given)."""
    request = {"argv": ["true"], "env": {}, "gpus": [], "cwd": None, **fields}
    return agent.request("launch", job=job, rank=rank, **request)


def rank_of(agent: Any, job: str, rank: int = 0) -> dict[str, Any]:
    """The `ranks` entry of one rank."""
    reply = agent.request("ranks", jobs=[job])
    assert reply["ok"], reply
    return next(r for r in reply["result"]["ranks"] if r["rank"] == rank)


def ended(agent: Any, job: str, rank: int = 0) -> dict[str, Any]:
    """The rank's entry once it no longer runs."""
    wait_for(lambda: not rank_of(agent, job, rank)["running"], what=f"rank {rank} of {job} ending")
    return rank_of(agent, job, rank)


def test_a_rank_runs_detached_once_and_says_how_it_ended(start_agent: Any, tmp_path: Path) -> None:
    agent = start_agent()
    script = 'echo "out $FACTORY_RANK_NOTE"; echo err >&2; pwd; exit 3'
    first = launch(agent, argv=["sh", "-c", script], env={"FACTORY_RANK_NOTE": "x y"}, cwd=str(tmp_path))
    assert first["ok"], first
    assert first["result"]["already"] is False
    again = launch(agent, argv=["sh", "-c", "echo second"])
    assert again["result"] == {**first["result"], "already": True}
    entry = ended(agent, "j1")
    assert (entry["exit_code"], entry["pid"]) == (3, first["result"]["pid"])
    assert entry["started_at"] <= entry["ended_at"]
    log = agent.request("logs", job="j1", rank=0, offset=0, limit=4096)["result"]
    assert log["data"] == f"out x y\nerr\n{tmp_path}\n"  # once: the second launch started nothing
    assert launch(agent, rank=1, argv=["true"])["ok"]
    assert launch(agent, rank=2, argv=["sh", "-c", "kill -USR1 $$"])["ok"]
    assert (ended(agent, "j1", 1)["exit_code"], ended(agent, "j1", 2)["exit_code"]) == (0, 128 + signal.SIGUSR1)
    everything = agent.request("ranks", jobs=None)["result"]["ranks"]
    assert [(r["job"], r["rank"]) for r in everything] == [("j1", 0), ("j1", 1), ("j1", 2)]


def test_a_rank_outlives_its_agent_and_the_next_agent_kills_its_group(start_agent: Any, tmp_path: Path) -> None:
    first = start_agent()
    child = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {child}; wait"
    pids = [
        launch(first, rank=r, argv=["sh", "-c", script if r == 0 else "sleep 300"])["result"]["pid"] for r in (0, 1)
    ]
    wait_for(child.exists, what="the rank's child starting")
    assert first.close() == 0  # EOF on its stdin, as an SSH session ending
    second = start_agent()
    assert [rank_of(second, "j1", r)["running"] for r in (0, 1)] == [True, True]
    assert second.request("kill", job="j1", signal="TERM")["result"] == {"signalled": [0, 1]}
    assert [ended(second, "j1", r)["exit_code"] for r in (0, 1)] == [128 + signal.SIGTERM] * 2
    wait_for(lambda: start_ticks(int(child.read_text())) is None, what="the rank's child dying with it")
    assert all(start_ticks(pid) is None for pid in pids)
    assert second.request("kill", job="j1", signal="KILL")["result"] == {"signalled": []}


def test_a_rank_whose_command_ended_says_its_group_runs_while_what_it_started_does(
    start_agent: Any, tmp_path: Path
) -> None:
    """`sh -c 'torchrun ...'` on SIGTERM: sh ends at once, its workers save their checkpoint; the rank's group runs."""
    agent = start_agent()
    child = tmp_path / "child.pid"
    saving = "trap 'sleep 3; exit 0' TERM; sleep 300 & wait"  # a worker taking 3 s to save once told
    script = f"sh -c {saving!r} & echo $! > {child}; sleep 300"
    assert launch(agent, argv=["sh", "-c", script])["ok"]
    wait_for(child.exists, what="the worker starting")
    assert rank_of(agent, "j1")["group_running"] is True  # running, so its group is too
    agent.request("kill", job="j1", signal="TERM")
    entry = ended(agent, "j1")
    assert (entry["exit_code"], entry["group_running"]) == (128 + signal.SIGTERM, True)  # the worker is saving
    wait_for(lambda: not rank_of(agent, "j1")["group_running"], what="the worker's save ending")


def test_kill_with_kill_and_a_wrapper_killed_without_writing_the_status(start_agent: Any, tmp_path: Path) -> None:
    agent = start_agent()
    assert launch(agent, argv=["sleep", "300"])["ok"]
    assert agent.request("kill", job="j1", signal="KILL")["result"] == {"signalled": [0]}
    assert ended(agent, "j1")["exit_code"] == 128 + signal.SIGKILL
    assert launch(agent, "j2", argv=["sleep", "300"])["ok"]
    (record_path,) = tmp_path.rglob("j2/rank-0/record.json")
    os.kill(json.loads(record_path.read_text())["wrapper_pid"], signal.SIGKILL)
    assert rank_of(agent, "j2")["running"] is True  # the command lives on: still the rank, still on its GPUs
    assert agent.request("kill", job="j2", signal="KILL")["result"] == {"signalled": [0]}
    assert {k: v for k, v in ended(agent, "j2").items() if k in ("running", "exit_code", "ended_at")} == {
        "running": False,
        "exit_code": None,
        "ended_at": None,
    }


def test_logs_read_from_an_offset_or_the_end_and_never_fail_on_bytes_that_are_no_utf8(start_agent: Any) -> None:
    agent = start_agent()
    assert launch(agent, argv=["printf", r"ab\377\376cd\303\251"])["ok"]
    ended(agent, "j1")

    def logs(offset: int, limit: int) -> dict[str, Any]:
        return dict(agent.request("logs", job="j1", rank=0, offset=offset, limit=limit)["result"])

    assert logs(0, 1024) == {"data": "ab\ufffd\ufffdcdé", "offset": 8, "size": 8}
    assert logs(0, 7) == {"data": "ab\ufffd\ufffdcd", "offset": 6, "size": 8}  # é left whole for the next read
    assert logs(6, 7) == {"data": "é", "offset": 8, "size": 8}
    assert logs(-3, 1024) == {"data": "dé", "offset": 8, "size": 8}
    assert logs(-100, 2) == {"data": "ab", "offset": 2, "size": 8}
    assert logs(50, 10) == {"data": "", "offset": 8, "size": 8}
    assert logs(6, 1) == {"data": "\ufffd", "offset": 7, "size": 8}  # never stuck: a reader with a tiny limit moves on


BAD_REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    ("launch", {"rank": 0, "argv": ["true"]}, "a job id must be"),
    ("launch", {"job": "../x", "rank": 0, "argv": ["true"]}, "a job id must be"),
    ("launch", {"job": "a/b", "rank": 0, "argv": ["true"]}, "a job id must be"),
    ("launch", {"job": "..", "rank": 0, "argv": ["true"]}, "a job id must be"),
    ("launch", {"job": "j", "rank": -1, "argv": ["true"]}, "rank must be an integer from 0"),
    ("launch", {"job": "j", "rank": True, "argv": ["true"]}, "rank must be an integer from 0"),
    ("launch", {"job": "j", "rank": 0}, "argv must be a non-empty list of strings"),
    ("launch", {"job": "j", "rank": 0, "argv": "true"}, "argv must be a non-empty list of strings"),
    ("launch", {"job": "j", "rank": 0, "argv": ["true", 3]}, "argv must be a non-empty list of strings"),
    ("launch", {"job": "j", "rank": 0, "argv": ["true"], "env": {"A=B": "c"}}, "env has a variable"),
    ("launch", {"job": "j", "rank": 0, "argv": ["true"], "env": {"A": 1}}, "env must be an object"),
    ("launch", {"job": "j", "rank": 0, "argv": ["true"], "gpus": [8]}, "no GPU 8 (it has GPUs 0-7)"),
    ("launch", {"job": "j", "rank": 0, "argv": ["true"], "gpus": [0, 0]}, "gpus names a GPU twice"),
    ("launch", {"job": "j", "rank": 0, "argv": ["no-such-program-s26"]}, "no program no-such-program-s26 was found"),
    ("launch", {"job": "j", "rank": 0, "argv": ["/no/such/prog"]}, "no program /no/such/prog was found"),
    ("launch", {"job": "j", "rank": 0, "argv": ["true"], "cwd": "/no/such/dir"}, "its directory /no/such/dir does"),
    ("ranks", {"jobs": "j"}, "jobs must be a list of job ids"),
    ("ranks", {"jobs": ["ok", "../../etc"]}, "a job id must be"),
    ("kill", {"job": "j", "signal": "HUP"}, "signal must be TERM or KILL"),
    ("kill", {"job": "/"}, "a job id must be"),
    ("logs", {"job": "j", "rank": 0}, "job j has no rank 0 on this node"),
    ("logs", {"job": "j", "rank": 0, "limit": 2 * 1024 * 1024}, "limit must be an integer from 1 to 1048576"),
    ("logs", {"job": "j", "rank": 0, "offset": "end"}, "offset must be an integer"),
]


def test_bad_requests_are_usage_errors_that_start_nothing(start_agent: Any, tmp_path: Path) -> None:
    agent = start_agent()
    refused = {}
    for op, fields, words in BAD_REQUESTS:
        reply = agent.request(op, **fields)
        error = reply.get("error") or {}
        refused[f"{op} {fields}"] = error.get("kind") == "usage" and words in error.get("message", "")
    assert [request for request, ok in refused.items() if not ok] == []
    assert list(tmp_path.rglob("rank-*")) == []  # a failed start leaves no half rank behind
    assert agent.request("ranks", jobs=None)["result"] == {"ranks": []}


def test_a_simulated_nodes_gpus_show_a_ranks_load_while_it_runs(start_agent: Any) -> None:
    agent = start_agent("--workload", "idle")

    def gpus() -> list[tuple[float, list[int]]]:
        sample = agent.request("sample")["result"]
        return [(g["utilization_pct"], [p["pid"] for p in g["processes"]]) for g in sample["gpus"][:3]]

    pid = launch(agent, argv=["sleep", "300"], gpus=[1])["result"]["pid"]
    assert gpus() == [(0.0, []), (100.0, [pid]), (0.0, [])]
    agent.request("kill", job="j1", signal="TERM")
    ended(agent, "j1")
    wait_for(lambda: gpus() == [(0.0, []), (0.0, []), (0.0, [])], what="the load gone (the sim reads it each second)")
