"""Per-node errors on stderr are folded like exec's output: one line per kind of failure, under its node set."""

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


#: Four nodes on four loopback addresses (127.0.0.2-.5 are all loopback on Linux), each refusing on port 1.
SPREAD = "name: lab\nnodes:\n" + "".join(f"  d{n}: {{host: 127.0.0.{n + 1}, port: 1}}\n" for n in range(1, 5))


def test_nodes_failing_alike_at_different_addresses_fold_without_the_address(capsys):
    errors = [
        {"node": f"d{n}", "error": "refused", "message": f"127.0.0.{n + 1}:1 refused the connection"}
        for n in range(1, 5)
    ]
    errors += [
        {"node": "t1", "error": "timeout", "message": "no answer from u@10.0.0.1:22 within 5 s"},
        {"node": "t2", "error": "timeout", "message": "no answer from u@10.0.0.2:22 within 5 s"},
        {"node": "lone", "error": "refused", "message": "cannot connect to 10.0.0.9:22: No route to host"},
        {"node": "other", "error": "agent", "message": "127.0.0.7:1 refused the connection"},
    ]
    report_node_errors(errors)
    assert capsys.readouterr().err.splitlines() == [
        "factoryctl: d[1-4] (4): refused the connection",
        "factoryctl: t[1-2] (2): no answer from its address within 5 s",
        "factoryctl: lone: cannot connect to 10.0.0.9:22: No route to host",
        "factoryctl: other: 127.0.0.7:1 refused the connection",
    ]


def test_refused_nodes_on_different_hosts_are_one_stderr_line_and_their_own_json_errors(cli, tmp_path):
    config = tmp_path / "factory.yaml"
    config.write_text(SPREAD)
    result = cli("--config", str(config), "gpus", "-o", "json")
    assert result.exit_code == 4
    lines = [line for line in result.stderr.splitlines() if line.startswith("factoryctl:")]
    assert lines == ["factoryctl: d[1-4] (4): refused the connection"], result.stderr
    assert sorted((e["node"], e["message"]) for e in result.json()["errors"]) == [
        (f"d{n}", f"127.0.0.{n + 1}:1 refused the connection") for n in range(1, 5)
    ]


@pytest.mark.parametrize(
    ("message", "folded"),
    [
        ("127.0.0.2:1 refused the connection", "refused the connection"),
        ("no answer from root@gpu01.lab:22 within 5 s", "no answer from its address within 5 s"),
        ("[gpu01]:22 refused the connection", "refused the connection"),
        ("[::1]:22 refused the connection", "refused the connection"),
        ("could not resolve gpu07.invalid", "could not resolve its address"),
        ("no sample since 2026-11-22T07:42:11Z", "no sample since 2026-11-22T07:42:11Z"),  # a time, not an address
        ("the price at 03:20 is stale", "the price at 03:20 is stale"),
    ],
)
def test_only_addresses_are_taken_out_for_folding(message, folded):
    from factoryctl.cli.render import without_address

    assert without_address(message) == folded
