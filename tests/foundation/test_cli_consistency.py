"""One CLI, not eight: `--fanout` means the same everywhere, and Click's usage errors read like ours.

`gpus --fanout 20000` was refused while `exec --fanout 20000` ran, `gpus -f` was unknown while `nodes trust -f`
worked, and an unknown option printed Click's `Usage: ... Error: No such option` instead of our sentence and hint.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import factoryctl.errors
from factoryctl.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]

FACTORY = """\
name: lab
nodes:
  n[1-2]: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 3}}
"""

#: Every command with a `--fanout`, as argv that only needs the option appended.
FANOUT_COMMANDS = [
    ("gpus",),
    ("nodes", "list"),
    ("exec", "n1"),
    ("nodes", "trust", "n1"),
    ("nodes", "check", "n1"),
    ("power", "set", "n1"),
    ("power", "reset", "n1"),
    ("power", "plan", "n1"),
    ("power", "apply", "n1"),
    ("power", "diff", "n1"),
    ("telemetry", "collect"),
    ("sim", "inject", "n1"),
]


def _commands() -> Iterator[tuple[str, object]]:
    """(path, click command) for every command of the app, nested groups included."""
    from typer.main import get_command

    from factoryctl.cli.app import app

    stack = [("factoryctl", get_command(app))]
    while stack:
        path, command = stack.pop()
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            stack.append((f"{path} {name}", sub))


def test_every_fanout_option_is_the_same_option():
    from factoryctl.transport.fanout import DEFAULT_FANOUT, MAX_FANOUT

    found = {
        path: (tuple(param.opts), param.default, param.min, param.max)  # type: ignore[attr-defined]
        for path, command in _commands()
        for param in getattr(command, "params", [])
        if param.name == "fanout"
    }
    assert set(found) == {"factoryctl " + " ".join(w for w in argv if w != "n1") for argv in FANOUT_COMMANDS}
    assert set(found.values()) == {(("--fanout", "-f"), DEFAULT_FANOUT, 1, MAX_FANOUT)}
    short_forms = " ".join((REPO / "docs" / "cli.md").read_text().split("**Short forms.**", 1)[1].split())
    documented = short_forms.split("`--fanout` for every command that has one (", 1)[1].split(":", 1)[0]
    assert set(re.findall(r"`([a-z ]+)`", documented)) == {path.removeprefix("factoryctl ") for path in found}


def test_the_library_defaults_are_the_cli_default():
    from factoryctl.cli import nodes
    from factoryctl.telemetry.poll import poll_nodes
    from factoryctl.transport.fanout import DEFAULT_FANOUT, FanOut, fan_out

    for function in (fan_out, FanOut.__init__, poll_nodes, nodes.node_items):
        assert inspect.signature(function).parameters["fanout"].default == DEFAULT_FANOUT, function


@pytest.mark.parametrize("argv", FANOUT_COMMANDS, ids=" ".join)
def test_fanout_out_of_range_is_the_same_usage_error_everywhere(cli, argv):
    command = " ".join(w for w in argv if w != "n1")
    for value in ("20000", "0"):
        result = cli(*argv, "--fanout", value, *(["--", "true"] if argv[0] == "exec" else []))
        assert result.exit_code == ExitCode.USAGE, result.stderr
        sentence = result.stderr.splitlines()[0]
        assert sentence.startswith("factoryctl: invalid value for '--fanout' / '-f': "), sentence
        assert result.stderr.splitlines()[1] == f"hint: see `factoryctl {command} --help`."


def test_short_f_is_fanout_for_listings_too(cli, tmp_path):
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY)
    gpus = cli("--config", str(config), "gpus", "-f", "1", "-o", "json")
    assert gpus.exit_code == 0, gpus.stderr
    assert len(gpus.json()["items"]) == 4  # type: ignore[index]
    listed = cli("--config", str(config), "nodes", "list", "-f", "1", "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    ran = cli("--config", str(config), "exec", "all", "-f", "1", "-n", "--", "true")
    assert ran.exit_code == 0, ran.stderr


@pytest.mark.parametrize(
    ("argv", "sentence", "command"),
    [
        (("sim", "inject", "n1", "--reset", "-o", "json"), "no such option: -o.", "factoryctl sim inject"),
        (("nodse",), "no such command 'nodse'; did you mean 'nodes'?", "factoryctl"),
        (("--bogus", "gpus"), "no such option: --bogus.", "factoryctl"),
        (("exec",), "missing argument 'target'.", "factoryctl exec"),
        (("nodes", "drain"), "missing argument 'target'.", "factoryctl nodes drain"),
        (("gpus", "n1", "n2"), "got unexpected extra argument(s) (n2).", "factoryctl gpus"),
        (("exec", "n1", "--fanout"), "option '--fanout' requires an argument.", "factoryctl exec"),
        (("-c", "f.yaml", "nodes", "trust", "n1", "-f"), "option '-f' requires an argument.", "factoryctl nodes trust"),
        (("nodes", "list", "--outpt", "json"), None, "factoryctl nodes list"),
        (("nodes", "list", "--timeout", "soon"), None, "factoryctl nodes list"),
    ],
)
def test_click_usage_errors_are_our_sentence_and_hint(cli, argv, sentence, command):
    result = cli(*argv)
    assert result.exit_code == ExitCode.USAGE
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("factoryctl: ")
    assert "Error" not in result.stderr
    assert "Usage" not in result.stderr
    if sentence is not None:
        assert lines[0] == f"factoryctl: {sentence}"
    assert lines[1] == f"hint: see `{command} --help`."


def test_an_unknown_option_keeps_clicks_suggestion(cli):
    result = cli("nodes", "list", "--outpt", "json")
    assert result.stderr.startswith("factoryctl: no such option: --outpt; did you mean --output")


def test_a_bad_choice_is_still_ours(cli):
    result = cli("gpus", "-o", "jsn")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines() == [
        "factoryctl: unknown output format 'jsn'.",
        "hint: choose from table, wide, json, yaml, csv; did you mean json?",
    ]


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_still_prints_clicks_usage(cli, flag):
    result = cli("sim", "inject", flag)
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: factoryctl sim inject")


def test_a_bare_noun_still_prints_its_help(cli):
    result = cli("sim")
    assert result.exit_code == ExitCode.USAGE
    assert "Usage: factoryctl sim" in result.stdout + result.stderr
    assert "inject" in result.stdout + result.stderr


def test_completion_is_unaffected():
    env = {
        **os.environ,
        "_FACTORYCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "factoryctl gpus --fan",
        "COMP_CWORD": "2",
    }
    done = subprocess.run(
        [sys.executable, "-m", "factoryctl"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["--fanout"]


def test_every_error_class_is_raised_somewhere():
    """An error class nothing raises (TimedOut was one) only misleads the reader of errors.py."""
    classes = [
        name
        for name, value in vars(factoryctl.errors).items()
        if isinstance(value, type) and issubclass(value, factoryctl.errors.FactoryError) and name != "FactoryError"
    ]
    sources = "\n".join(path.read_text() for path in (REPO / "factoryctl").rglob("*.py") if path.name != "errors.py")
    unused = [name for name in classes if not re.search(rf"\b{name}\b", sources)]
    assert unused == []


def test_readme_and_cli_doc_list_every_exit_code():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    cli_doc = (REPO / "docs" / "cli.md").read_text()
    for code in ExitCode:
        assert re.search(rf"\b{int(code)}\s", section), code
        assert re.search(rf"\b{int(code)}\s", cli_doc), code
    for text in (section, cli_doc):
        assert "FACTORYCTL_DEBUG=1" in text


@pytest.mark.parametrize("module", ["cli/nodes.py", "cli/gpus.py", "errors.py"])
def test_docstrings_point_at_documents_that_exist(module):
    text = (REPO / "factoryctl" / module).read_text()
    for document in re.findall(r"\b([\w/]+\.md)\b", text):
        assert (REPO / document).exists() or (REPO / "docs" / document).exists(), document
