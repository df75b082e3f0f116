"""Start-up is a budget and layers are real: check what gets imported, in a fresh interpreter each time."""

from __future__ import annotations

import importlib.util
import json
import pkgutil
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


def submodules(package: str) -> list[str]:
    """Every module of `package`, found on disk without importing them, so a new one is checked without a list."""
    found = importlib.util.find_spec(package)
    assert found is not None
    assert found.submodule_search_locations is not None
    return [f"{package}.{info.name}" for info in pkgutil.iter_modules(found.submodule_search_locations)]


#: The pure core (import-linter's "Pure core" contract) and the modules the CLI needs before it touches a node.
HEADLESS = (
    *submodules("factoryctl.model"),
    *submodules("factoryctl.scheduler"),
    *submodules("factoryctl.power.policy"),
    "factoryctl.power.curve",
    "factoryctl.power.curve_file",
    "factoryctl.power.simulator",
    "factoryctl.config",
    "factoryctl.config_schema",
    "factoryctl.targets",
    "factoryctl.textfile",
)


#: Packages with IO or UI that the headless modules must not load, not even through another module.
IO_AND_UI = ("factoryctl.transport", "factoryctl.store", "factoryctl.cli", "factoryctl.tui")


def test_the_headless_list_names_the_pure_modules():
    assert {"factoryctl.scheduler.simulate", "factoryctl.power.policy.engine", "factoryctl.model.jobs"} <= set(HEADLESS)
    assert all(importlib.util.find_spec(module) for module in HEADLESS)


@pytest.mark.parametrize("module", HEADLESS)
def test_core_modules_stay_headless(module):
    loaded = loaded_after(f"import {module}")
    assert not roots(loaded) & {"textual", "paramiko", "pynvml", "rich"}
    assert not {m for m in loaded if m.startswith(IO_AND_UI)}


def test_agent_and_sim_import_only_what_ships():
    loaded = loaded_after("import factoryctl.sim, factoryctl.agent")
    assert not roots(loaded) & {"textual", "paramiko", "pynvml", "rich", "typer", "pydantic", "yaml"}
    assert not {m for m in loaded if m.startswith(("factoryctl.cli", "factoryctl.config", "factoryctl.model"))}
