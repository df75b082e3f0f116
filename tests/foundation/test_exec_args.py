"""Where exec's own options end and the remote command begins (cli/exec_args.py), word by word, help included."""

from __future__ import annotations

import pytest
from test_completion import complete_bash

from factoryctl.cli.exec_args import separated

VALUE_OPTIONS = frozenset({"-t", "--timeout", "-f", "--fanout", "-o", "--output"})


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["all", "grep", "-n", "x"], ["all", "--", "grep", "-n", "x"]),
        (["all", "-t", "5", "-L", "uptime"], ["all", "-t", "5", "-L", "--", "uptime"]),
        (["-t", "5", "all", "uptime", "-t", "1"], ["-t", "5", "all", "--", "uptime", "-t", "1"]),
        (["all", "-t", "5", "--", "uptime"], ["all", "-t", "5", "--", "uptime"]),  # explicit: left alone
        (["all", "echo", "hi", "--", "-t"], ["all", "--", "echo", "hi", "--", "-t"]),  # the command's `--` stays
        (["all", "--timeout", "5", "x"], ["all", "--timeout", "5", "--", "x"]),
        (["all", "--timeout=5", "x"], ["all", "--timeout=5", "--", "x"]),
        (["all", "-Lt", "5", "x"], ["all", "-Lt", "5", "--", "x"]),
        (["all", "-Lt5", "x"], ["all", "-Lt5", "--", "x"]),
        (["all", "-t", "-1", "x"], ["all", "-t", "-1", "--", "x"]),  # a value that looks like an option
        (["all", "-", "x"], ["all", "--", "-", "x"]),  # `-` is a word, not an option
        (["all"], ["all"]),
        (["all", "-o"], ["all", "-o"]),  # being completed: no value yet
        (["--help"], ["--help"]),
    ],
)
def test_a_separator_goes_in_front_of_the_commands_first_word(args, expected):
    assert separated(args, VALUE_OPTIONS, 1) == expected


def test_help_still_works(cli):
    r = cli("exec", "--help")
    assert r.exit_code == 0, r.stderr
    assert "Usage: factoryctl exec [OPTIONS]" in r.stdout
    assert "--no-stdin" in r.stdout


def test_a_command_word_named_help_is_the_commands(cli, tmp_path):
    config = tmp_path / "factory.yaml"
    config.write_text("name: lab\nnodes:\n  n01: {transport: local}\n")
    r = cli("--config", str(config), "exec", "n01", "echo", "--help", "-h")
    assert (r.exit_code, r.stdout) == (0, "---------------\nn01 (1)\n---------------\n--help -h\n")


def test_execs_options_are_still_completed():
    assert complete_bash("factoryctl exec --no-s") == ["--no-stdin"]
    assert complete_bash("factoryctl exec all -t 5 --li") == ["--lines"]
    assert complete_bash("factoryctl exec all -t 5 -o y") == ["yaml"]


@pytest.mark.parametrize("output", ["json", "yaml", "csv"])
def test_lines_with_a_document_is_a_usage_error(cli, tmp_path, output):
    """`-L -o json` used to ignore --lines without a word: one of them has to go."""
    config = tmp_path / "factory.yaml"
    config.write_text("name: lab\nnodes:\n  n01: {transport: local}\n")
    r = cli("--config", str(config), "exec", "n01", "-L", "-o", output, "--", "true")
    assert (r.exit_code, r.stdout) == (2, "")
    assert r.stderr.startswith(f"factoryctl: --lines cannot be used with -o {output}.\nhint: --lines prints each line")
