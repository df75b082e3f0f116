"""Per-node errors on stderr are folded like exec's output: one line per distinct message, under its node set."""

from __future__ import annotations

import pytest

from factoryctl.cli.render import report_node_errors

REFUSED = "name: lab\nnodes:\n  d[01-20]: {host: 127.0.0.1, port: 1}\n  ws: {transport: local, sim: h100-sxm}\n"


def test_identical_errors_are_one_line_naming_the_folded_nodes(capsys):
    errors = [
        {"node": "d02", "error": "refused", "message": "d02: 127.0.0.1:1 refused the connection"},
        {"node": "x", "error": "dns", "message": "cannot resolve x.example"},
        {"node": "d01", "error": "refused", "message": "d01: 127.0.0.1:1 refused the connection"},
        {"node": "d03", "error": "refused", "message": "d03: 127.0.0.1:1 refused the connection", "hint": "own."},
    ]
    report_node_errors(errors, {"refused": "is sshd running?", "dns": "check the name."})
    assert capsys.readouterr().err.splitlines() == [
        "factoryctl: d[01-03] (3): 127.0.0.1:1 refused the connection",
        "factoryctl: x: cannot resolve x.example",
        "hint: is sshd running?",
        "hint: check the name.",
        "hint: own.",
    ]


@pytest.mark.parametrize("command", [["nodes"], ["gpus"], ["exec", "all", "--", "true"]])
def test_twenty_refused_nodes_are_one_stderr_line_and_twenty_json_errors(cli, tmp_path, command):
    config = tmp_path / "factory.yaml"
    config.write_text(REFUSED)
    result = cli("--config", str(config), *command)
    assert result.exit_code == 4
    lines = [line for line in result.stderr.splitlines() if line.startswith("factoryctl:")]
    assert lines == ["factoryctl: d[01-20] (20): 127.0.0.1:1 refused the connection"], result.stderr
    document = cli("--config", str(config), *command[:1], "-o", "json", *command[1:]).json()
    assert sorted(e["node"] for e in document["errors"]) == [f"d{n:02d}" for n in range(1, 21)]
    assert {(e["error"], e["message"]) for e in document["errors"]} == {
        ("refused", "127.0.0.1:1 refused the connection")
    }
