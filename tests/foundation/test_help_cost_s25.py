"""`factoryctl <noun> --help` costs what `factoryctl --help` costs: no converter (pydantic) for options not given.

Typer built a pydantic converter for the root's `--config` and `--help` even when they were not given, so every
`<noun> --help` imported pydantic (a third of its run). cli/lazy_coercion.py builds a converter for its first value.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer


def run_and_list_modules(args: list[str]) -> tuple[int, str, set[str]]:
    """Run the CLI in a fresh interpreter: (exit status, stdout, the modules loaded by the end)."""
    probe = (
        "import io, json, sys, contextlib\n"
        "from factoryctl.cli.app import run\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    status = run({args!r})\n"
        "print(json.dumps([status, out.getvalue(), sorted(sys.modules)]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    status, stdout, modules = json.loads(done.stdout.strip().splitlines()[-1])
    return status, stdout, set(modules)


@pytest.mark.parametrize(
    "args", [["power", "--help"], ["nodes", "--help"], ["power", "plan", "--help"], ["sched", "-h"]]
)
def test_noun_and_verb_help_load_no_pydantic(args):
    status, stdout, modules = run_and_list_modules(args)
    assert status == 0
    assert stdout.startswith(f"Usage: factoryctl {' '.join(args[:-1])} ")
    assert "pydantic" not in modules


def test_a_value_given_is_still_converted_and_checked():
    status, _, modules = run_and_list_modules(["nodes", "list", "--fanout", "x"])
    assert status == 2  # Typer's converter was built for the value, and refused it
    assert "pydantic" in modules


def parameters_built(args: list[str]) -> int:
    """How many options and arguments Typer built to answer `args`, in a fresh interpreter."""
    probe = (
        "import io, contextlib\n"
        "from typer import core\n"
        "built = []\n"
        "for cls in (core.TyperOption, core.TyperArgument):\n"
        "    def counted(self, *a, __init=cls.__init__, **k):\n"
        "        built.append(1)\n"
        "        __init(self, *a, **k)\n"
        "    cls.__init__ = counted\n"
        "from factoryctl.cli.app import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert run({args!r}) == 0\n"
        "print(len(built))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("args", "at_most"), [(["--help"], 10), (["-h"], 10), (["power", "--help"], 15)])
def test_a_help_request_builds_only_the_options_it_shows(args, at_most):
    """The root's options (and the noun's callback's); not the ~170 of every command (they were all built)."""
    assert parameters_built(args) <= at_most


def every_help_request() -> list[list[str]]:
    from typer.main import get_command

    from factoryctl.cli.app import app

    paths: list[list[str]] = [[]]

    def walk(command: object, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            paths.append([*path, name])
            walk(sub, [*path, name])

    walk(get_command(app), [])
    asked = [[*path, word] for path in paths for word in ("--help", "-h")]
    return asked


def said(app: typer.Typer, args: list[str]) -> tuple[str, str]:
    """What the command tree built from `app` prints for `args` (stdout, and the error's text if it raised one)."""
    import contextlib
    import io

    from typer.main import get_command

    out, error = io.StringIO(), ""
    try:
        with contextlib.redirect_stdout(out):
            get_command(app)(args=args, prog_name="factoryctl", standalone_mode=False)
    except Exception as exc:  # the usage errors (unknown command) are compared too
        error = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
    return out.getvalue(), error


def test_every_help_says_what_the_whole_tree_says(monkeypatch):
    from factoryctl.cli.app import app
    from factoryctl.cli.help_only import help_only

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("_FACTORYCTL_COMPLETE", raising=False)
    requests = every_help_request()
    assert len(requests) > 80  # every noun and verb, both spellings
    assert said(app, ["power", "-h"])[0].startswith("Usage: factoryctl power [OPTIONS] COMMAND")
    assert said(app, ["nosuch", "-h"])[1] == "UsageError: No such command 'nosuch'."
    for args in requests:
        shallow = help_only(app, args)
        assert shallow is not app
        assert said(shallow, args) == said(app, args), args


def test_other_command_lines_and_completion_get_the_whole_tree(monkeypatch):
    from factoryctl.cli.app import app
    from factoryctl.cli.help_only import help_only

    for args in (
        [],
        ["-q", "power", "--help"],
        ["power", "set", "n1"],
        ["--version"],
        ["power", "--help", "x"],
        ["exec", "n1", "ls", "--help"],  # `ls --help` on n1
        ["power", "nosuch", "--help"],
        ["nosuch", "-h"],
    ):
        assert help_only(app, args) is app
    monkeypatch.setenv("_FACTORYCTL_COMPLETE", "complete_bash")
    assert help_only(app, ["--help"]) is app
