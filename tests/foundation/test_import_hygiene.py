"""Start-up is a budget and layers are real: check what gets imported, in a fresh interpreter each time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("textual", "paramiko", "pynvml")


def loaded_after(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def roots(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


#: Modules that only commands need, kept out of `--help` (the budget is 1.5x `import typer`, and it is tight).
COMMAND_ONLY = ("factoryctl.cli.outfile", "tempfile", "yaml", "pydantic", "sqlite3")


def test_cli_help_imports_no_textual_paramiko_or_pynvml():
    code = "from factoryctl.cli.app import run\ntry:\n    run(['--help'])\nexcept SystemExit:\n    pass"
    loaded = loaded_after(code)
    assert not roots(loaded) & set(HEAVY)
    assert not loaded & set(COMMAND_ONLY)


@pytest.mark.parametrize("module", ["factoryctl.model.telemetry", "factoryctl.model.inventory", "factoryctl.config"])
def test_core_modules_stay_headless(module):
    loaded = roots(loaded_after(f"import {module}"))
    assert not loaded & {"textual", "paramiko", "pynvml", "rich"}


def test_agent_and_sim_import_only_what_ships():
    loaded = loaded_after("import factoryctl.sim, factoryctl.agent")
    assert not roots(loaded) & {"textual", "paramiko", "pynvml", "rich", "typer", "pydantic", "yaml"}
    assert not {m for m in loaded if m.startswith(("factoryctl.cli", "factoryctl.config", "factoryctl.model"))}
