"""exec's result on stderr and its memory, on local and SSH nodes (`fleet`: both).

A non-zero remote exit is listed on stderr whatever the output format (a script's exit 2 or 4 may be the command's
own, not a usage or connection error); what the nodes keep of their output is bounded in total, not only per
stream (`OutputBudget`), and printing it never copies it whole.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest
from exec_fleets import Fleet, fleet  # noqa: F401 - the fixture

import factoryctl.transport.base as base


@pytest.mark.parametrize("output", ["json", "yaml", "csv", "table"])
def test_a_non_zero_exit_is_on_stderr_in_every_format(cli, fleet: Fleet, output: str):  # noqa: F811
    r = cli("--config", fleet.config, "exec", "all", "-o", output, "--", "sh", "-c", "exit 4")
    assert r.exit_code == 4
    assert "factoryctl: n[01-02] (2): exited with exit code 4" in r.stderr.splitlines()


def test_a_mixed_result_lists_the_exit_code_and_the_timeout(cli, fleet: Fleet, tmp_path: Path):  # noqa: F811
    """One node exits 7, the other times out: both are on stderr, and the timeout sets exec's status."""
    first = tmp_path / "first"  # the node that makes it first exits 7, the other hangs
    script = 'mkdir "$0" 2>/dev/null && exit 7; exec sleep 30'
    r = cli("--config", fleet.config, "exec", "all", "-o", "json", "-t", "2", "--", "sh", "-c", script, str(first))
    assert r.exit_code == 124, r.stderr
    assert re.search(r"^factoryctl: n0[12]: exited with exit code 7$", r.stderr, re.MULTILINE), r.stderr
    assert "did not finish within 2 s" in r.stderr


#: The budget in the tests below: two nodes printing PRINTED bytes each cannot both keep all of it.
BUDGET = 1 << 20
PRINTED = 800_000


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """One exec keeps at most BUDGET bytes of output, all nodes together."""
    monkeypatch.setattr(base, "MAX_TOTAL_OUTPUT_BYTES", BUDGET)


def dropped_past_budget(stderr: str) -> int:
    said = re.findall(r"output truncated: (\d+) bytes past the (\d+) byte limit for all nodes together", stderr)
    assert all(int(limit) == BUDGET for _, limit in said)
    return sum(int(count) for count, _ in said)


def test_the_kept_output_of_all_nodes_is_bounded_in_total(cli, fleet: Fleet, small_budget: None):  # noqa: F811
    script = f"head -c {PRINTED} /dev/zero | tr '\\0' x"
    r = cli("--config", fleet.config, "exec", "all", "-o", "json", "--", "sh", "-c", script)
    assert r.exit_code == 1, r.stderr[-500:]  # every command exited 0, but exec dropped output: it failed
    assert TRUNCATED.search(r.stderr), r.stderr[-500:]
    items = r.json()["items"]  # type: ignore[index]
    assert sum(len(item["stdout"]) for item in items) == BUDGET
    assert set("".join(item["stdout"] for item in items)) == {"x"}
    assert dropped_past_budget("".join(item["stderr"] for item in items)) == 2 * PRINTED - BUDGET


def test_the_budget_covers_stderr_too(cli, fleet: Fleet, small_budget: None):  # noqa: F811
    script = f"head -c {PRINTED} /dev/zero | tr '\\0' x; head -c {PRINTED} /dev/zero | tr '\\0' y >&2"
    r = cli("--config", fleet.config, "exec", "all", "-o", "json", "--", "sh", "-c", script)
    assert r.exit_code == 1
    items = r.json()["items"]  # type: ignore[index]
    stderr = "".join(item["stderr"] for item in items)
    notes = "".join(re.findall(r"factoryctl: output truncated: [^\n]*\n", stderr))
    kept = sum(item["stdout"].count("x") for item in items) + stderr.count("y") - notes.count("y")
    assert kept == BUDGET
    assert dropped_past_budget(notes) == 4 * PRINTED - BUDGET
    table = cli("--config", fleet.config, "exec", "all", "--", "sh", "-c", script)  # gathered: the notes shown
    assert table.exit_code == 1
    assert dropped_past_budget(table.stderr) > 0
    assert TRUNCATED.search(table.stderr), table.stderr[-500:]


#: What exec says at the end when it dropped output (and exits 1 for it, unless a command failed): of one node or
#: both, as the budget is first come, first served.
TRUNCATED = re.compile(
    r"factoryctl: (n0[12]|n\[01-02\] \(2\)): output truncated: more than exec keeps was dropped\n"
    r"hint: use --lines, which prints the output as it arrives and keeps none of it in memory, or have the command"
    r" write its output to a file on the node\.\n\Z"
)


def test_a_commands_own_failure_outranks_dropped_output(cli, fleet: Fleet, small_budget: None):  # noqa: F811
    script = f"head -c {PRINTED} /dev/zero | tr '\\0' x; exit 3"
    r = cli("--config", fleet.config, "exec", "all", "--", "sh", "-c", script)
    assert r.exit_code == 3
    assert "factoryctl: n[01-02] (2): exited with exit code 3\n" in r.stderr
    assert TRUNCATED.search(r.stderr), r.stderr[-500:]


def test_output_within_the_limits_still_exits_0(cli, fleet: Fleet, small_budget: None):  # noqa: F811
    script = f"head -c {BUDGET // 4} /dev/zero | tr '\\0' x"
    r = cli("--config", fleet.config, "exec", "all", "-o", "json", "--", "sh", "-c", script)
    assert (r.exit_code, r.stderr) == (0, "")


def test_lines_shows_everything_and_keeps_nothing(cli, fleet: Fleet, small_budget: None):  # noqa: F811
    """--lines prints what passes (all of it, past any budget); the kept output would never be shown."""
    script = f"head -c {PRINTED} /dev/zero | tr '\\0' x; echo"
    r = cli("--config", fleet.config, "exec", "all", "--lines", "--", "sh", "-c", script)
    assert r.exit_code == 0, r.stderr[-500:]
    assert r.stdout.count("x") == 2 * PRINTED
    assert "truncated" not in r.stderr


def test_a_running_commands_output_so_far_shares_the_transports_chunks():
    """`KeptOutput.so_far` reads what the command's own streams kept: the first of each (later ones are probes)."""
    kept = base.KeptOutput(base.OutputBudget(10))
    with kept.collecting():
        out, err = base.CappedOutput(number=1), base.CappedOutput(number=2)
        probe = base.CappedOutput(0, 1)
    outside = base.CappedOutput(number=1)
    out.add(b"abcdef")
    err.add(b"ghijkl")  # 4 bytes left in the budget
    probe.add(b"zz")
    outside.add(b"not counted")
    assert kept.so_far() == (b"abcdef", b"ghij")
    assert (err.over_budget, outside.value()) == (2, b"not counted")
    assert base.kept_stderr(out, err).endswith(
        b"ghijfactoryctl: output truncated: 2 bytes past the 10 byte limit for all nodes together were dropped\n"
    )


def test_the_default_budget_is_a_gib_or_an_eighth_of_memory():
    import os

    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert base.exec_output_budget().total == min(1 << 30, memory // 8)


def captured(write) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
    try:
        write()
        return sys.stdout.getvalue(), sys.stderr.getvalue()
    finally:
        sys.stdout, sys.stderr = old


def test_json_written_an_entry_at_a_time_is_the_whole_documents_text():
    from factoryctl.cli.exec_output import _json_error, _json_item, emit_json
    from factoryctl.cli.render import dump_json
    from factoryctl.errors import NodeError
    from factoryctl.transport.base import CommandCut

    odd = 'quote " back \\ nl \n tab \t nul \0 \u00e9\u4e2d \U0001f600'.encode() + b"\xff\xe2\x82"
    items = [
        {"node": "n01", "exit_code": 0, "stdout": odd, "stderr": b"", "duration_s": 0.25},
        {"node": "n02", "exit_code": 3, "stdout": b"", "stderr": b"x\n" * 3, "duration_s": 1e-07},
    ]
    cut = CommandCut(NodeError("n03", "timeout", "did not finish", "raise it"), b"so far\n", odd)
    for errors in ([], [cut, NodeError("n04", "refused", "refused")]):
        for shown in ([], items):
            document = {
                "schema_version": 1,
                "items": [_json_item(i) for i in shown],
                "errors": [_json_error(e) for e in errors],
            }
            assert captured(lambda: emit_json(shown, errors))[0] == dump_json(document)  # noqa: B023
            json.loads(captured(lambda: emit_json(shown, errors))[0])  # noqa: B023


@pytest.mark.parametrize(
    "data",
    [
        b"a\nb\n",
        b"a\r\nb",
        b"\n\n\nlast",
        b"form\x0cfeed\x1crecord\r\rcr\n",
        "nel\u0085ls\u2028ps\u2029".encode(),
        b"cut \xe2\x82\nbad \xff\xfe\n\xe2",
        b"",
        b"\n",
        b"x" * 3_000_000 + b"\ry\n",
    ],
)
def test_stderr_is_gathered_line_by_line_as_the_whole_text_would_be(data: bytes):
    from factoryctl.cli.exec_output import _write_prefixed

    lines = data.split(b"\n")  # split at newlines only, as pdsh does: \r and \x1c stay in their line
    if data.endswith(b"\n") or not data:
        lines.pop()
    whole = "".join(f"n[01-02]: {line.decode('utf-8', 'replace')}\n" for line in lines)
    assert captured(lambda: _write_prefixed("n[01-02]", data))[1] == whole
