"""The CLI's surface without nodes: version, init, config, error boundary, exit codes, completion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli_process import run_cli_text

from factoryctl import __version__


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"factoryctl {__version__}"


def test_init_writes_a_valid_example_and_refuses_to_overwrite(cli):
    assert cli("init").exit_code == 0
    text = Path("factory.yaml").read_text()
    assert text.startswith("# factory.yaml")
    validated = cli("config", "validate")
    assert validated.exit_code == 0, validated.stderr
    assert ": ok, 1 node, 1 group" in validated.stdout
    again = cli("init")
    assert again.exit_code == 2
    assert "already exists" in again.stderr
    assert "--force" in again.stderr
    assert Path("factory.yaml").read_text() == text
    quiet = cli("-q", "init", "quiet.yaml")
    assert quiet.exit_code == 0
    assert quiet.stderr == ""


def test_init_dash_prints_the_example_on_stdout_and_writes_no_file(cli):
    result = cli("init", "-")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("# factory.yaml")
    assert result.stderr == ""
    assert not Path("-").exists()
    assert not Path("factory.yaml").exists()
    Path("piped.yaml").write_text(result.stdout)
    validated = cli("--config", "piped.yaml", "config", "validate")
    assert validated.exit_code == 0, validated.stderr


def test_config_error_is_one_sentence_with_hint_and_exit_3(cli):
    Path("factory.yaml").write_text("name: lab\nnodes:\n  gpu01: {hostt: x}\n")
    result = cli("config", "validate")
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"factoryctl: {Path.cwd() / 'factory.yaml'}:3:11: unknown key `nodes.gpu01.hostt`."
    assert lines[1] == "hint: did you mean `host`?"
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_missing_config_is_exit_3(cli):
    result = cli("nodes", "list")
    assert result.exit_code == 3
    assert "no factory.yaml in the current directory or at " in result.stderr
    assert "factoryctl init" in result.stderr


def test_bad_target_is_exit_2(cli):
    Path("factory.yaml").write_text("name: lab\nnodes:\n  gpu01: {}\n")
    result = cli("gpus", "@rack-z")
    assert result.exit_code == 2
    assert "unknown group `@rack-z`" in result.stderr
    result = cli("nodes", "list", "nothere")
    assert result.exit_code == 2
    assert "matches no node" in result.stderr


def test_unknown_command_and_bad_option_are_usage_errors(cli):
    assert cli("frobnicate").exit_code == 2
    assert cli("gpus", "-o", "xml").exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ("gpus", "-o", "jsn"),
        ("nodes", "list", "--output", "jsn"),
        ("exec", "all", "-o", "jsn", "--", "true"),
        ("config", "show", "--output=jsn"),
    ],
)
def test_bad_output_format_is_our_one_sentence_usage_error(cli, args):
    """Before any config is read (there is none here): one sentence, a hint with did-you-mean, exit 2.

    The hint offers only what the command takes: `config show` prints a document, so no csv.
    """
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    formats = "table, wide, json, yaml" if args[0] == "config" else "table, wide, json, yaml, csv"
    assert (
        result.stderr == f"factoryctl: unknown output format 'jsn'.\nhint: choose from {formats}; did you mean json?\n"
    )


def test_bad_output_format_without_a_near_choice(cli):
    result = cli("gpus", "-o", "xml")
    assert result.stderr.splitlines() == [
        "factoryctl: unknown output format 'xml'.",
        "hint: choose from table, wide, json, yaml, csv.",
    ]


def test_output_format_ignores_case(cli):
    assert "output format" not in cli("gpus", "-o", "JSON").stderr
    assert "output format" in cli("gpus", "-o", "JSN").stderr


def test_bad_log_level_is_a_usage_error_before_the_controller_starts(cli):
    result = cli("controller", "run", "--log-level", "warnin")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "factoryctl: unknown log level 'warnin'.",
        "hint: choose from debug, info, warning, error; did you mean warning?",
    ]


def test_bad_output_format_through_the_console_script():
    """main(), as installed: no click usage block, exit 2."""
    done = run_cli_text("gpus", "-o", "yml", timeout=60)
    assert done.returncode == 2
    assert done.stderr == (
        "factoryctl: unknown output format 'yml'.\nhint: choose from table, wide, json, yaml, csv; did you mean yaml?\n"
    )


def test_config_show_expands_nodes(cli):
    Path("factory.yaml").write_text("name: lab\nnodes:\n  gpu[01-02]: {rack: a}\ngroups: {r: 'gpu[01-02]'}\n")
    doc = cli("config", "show", "-o", "json").json()
    assert list(doc["nodes"]) == ["gpu01", "gpu02"]
    assert doc["nodes"]["gpu02"]["rack"] == "a"
    assert doc["groups"] == {"r": ["gpu01", "gpu02"]}
    assert doc["controller"]["interval_s"] == 1.0


def test_sim_inject_on_a_real_node_is_refused(cli):
    Path("factory.yaml").write_text("name: lab\nnodes:\n  gpu01: {}\n  s1: {transport: local, sim: h100-sxm}\n")
    result = cli("sim", "inject", "gpu01", "--ecc")
    assert result.exit_code == 2
    assert "gpu01 is not a simulated node" in result.stderr
    assert cli("sim", "inject", "s1", "--ecc", "--lost").exit_code == 2


def test_debug_shows_traceback_only_when_asked(cli):
    Path("factory.yaml").write_text("nodes: [\n")
    plain = cli("config", "validate")
    assert plain.exit_code == 3
    assert "Traceback" not in plain.stderr
    debug = cli("--debug", "config", "validate")
    assert debug.exit_code == 3
    assert "Traceback" in debug.stderr


def test_init_into_a_directory_or_an_unwritable_place_is_one_sentence(cli, tmp_path):
    into_dir = cli("init", str(tmp_path))
    assert into_dir.exit_code == 2
    assert "is a directory" in into_dir.stderr
    (tmp_path / "file").write_text("")
    unwritable = cli("init", str(tmp_path / "file" / "factory.yaml"))
    assert unwritable.exit_code == 1
    assert "cannot write" in unwritable.stderr
    assert "Traceback" not in unwritable.stderr


def test_an_unexpected_error_is_one_sentence_without_debug(monkeypatch, capsys):
    from factoryctl.cli import app

    def broken(argv=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(app, "run", broken)
    monkeypatch.setattr(sys, "argv", ["factoryctl", "nodes"])
    with pytest.raises(SystemExit) as stopped:
        app.main()
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("factoryctl: unexpected error: RuntimeError: boom\nhint: rerun with --debug")
    monkeypatch.setattr(sys, "argv", ["factoryctl", "--debug", "nodes"])
    with pytest.raises(RuntimeError):
        app.main()


def test_console_script_runs_out_of_process(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "factoryctl", "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert __version__ in result.stdout


#: The top-level commands, as `factoryctl --help` lists them: written out, not read from the registry in
#: factoryctl/cli/app.py (NOUNS, COMMAND_MODULES), so a command dropped from it is caught here.
TOP_LEVEL_COMMANDS = [
    "init", "gpus", "exec", "demo", "dash", "events", "audit", "completion",
    "config", "nodes", "sim", "telemetry", "sched", "jobs", "price", "power", "controller", "metrics",
]  # fmt: skip


def _listed_commands(help_text: str) -> list[str]:
    """The command names under `Commands:` in a --help text, in their order."""
    section = help_text.split("\nCommands:\n", 1)[1]
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ") and not line.startswith("   ")]


def test_every_listed_noun_verb_and_command_registers(cli):
    """A command module that cannot be found is an error, not a command that silently vanishes from the CLI."""
    from factoryctl.cli.app import VERB_MODULES

    shown = cli("--help")
    assert shown.exit_code == 0, shown.stderr
    assert sorted(_listed_commands(shown.stdout)) == sorted(TOP_LEVEL_COMMANDS)
    for name in TOP_LEVEL_COMMANDS:
        result = cli(name, "--help")
        assert result.exit_code == 0, (name, result.stderr)
    assert set(VERB_MODULES) <= set(TOP_LEVEL_COMMANDS)
    assert cli("sched", "explain", "--help").exit_code == 0
    assert cli("power", "set", "--help").exit_code == 0
    assert cli("nodes", "drain", "--help").exit_code == 0


def test_output_to_a_full_disk_is_one_sentence_and_exit_1(tmp_path):
    """`config show > /dev/full` said "unexpected error: OSError ... report it"."""
    config = tmp_path / "factory.yaml"
    config.write_text("nodes: {a: {}}\n")
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "factoryctl", "--config", str(config), "config", "show"],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("factoryctl: could not write the output: No space left on device.\n")
    assert "unexpected" not in done.stderr


def test_init_writes_where_config_points_when_no_path_is_given(cli, tmp_path):
    """`factoryctl --config X init` wrote ./factory.yaml, not X."""
    target = tmp_path / "etc" / "factory.yaml"
    result = cli("--config", str(target), "init")
    assert result.exit_code == 0, result.stderr
    assert target.exists()
    assert not (Path.cwd() / "factory.yaml").exists()
    assert cli("--config", str(target), "config", "validate").exit_code == 0


def test_a_ctrl_c_during_shutdown_exits_with_the_decided_status_and_no_traceback():
    # paramiko's exit handler joins its threads at shutdown: a second Ctrl-C there printed a traceback
    program = (
        "import atexit, os, signal, sys, time\n"
        "from factoryctl.cli.app import main\n"
        "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.5)))\n"
        "sys.argv = ['factoryctl', '--version']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("factoryctl ")
    assert "Traceback" not in done.stderr
    assert "Exception ignored" not in done.stderr
