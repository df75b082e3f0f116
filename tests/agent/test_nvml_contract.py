"""Every pynvml function the agent calls exists in the installed nvidia-ml-py with a compatible signature.

The names come from two places that must agree: the wrapper's registry (`NVML_CALLS`) and a scan of the agent's
source for NVML names passed to the wrapper. The arity of each call site is checked by binding it to the real
signature, so a pynvml upgrade that changes a function breaks this test, not a node.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pynvml
import pytest

import factoryctl.agent
from factoryctl.agent.nvml import NVML_CALLS
from factoryctl.sim import nvml as sim

AGENT_DIR = Path(factoryctl.agent.__file__).parent


def _call_sites() -> list[tuple[str, int, str]]:
    """(function name, number of arguments, where) for every `f("nvml...", args...)` and `lib.nvmlX(args...)`."""
    sites = []
    for path in sorted(AGENT_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            where = f"{path.name}:{node.lineno}"
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.startswith("nvml"):
                if not first.value.startswith(("nvmlEventType", "nvmlClocks")):  # constants, not calls
                    sites.append((first.value, len(node.args) - 1, where))
            elif isinstance(node.func, ast.Attribute) and node.func.attr.startswith("nvml"):
                sites.append((node.func.attr, len(node.args), where))
    return sites


SITES = _call_sites()


def test_the_scan_finds_the_agent_calls():
    names = {name for name, _, _ in SITES}
    assert {"nvmlDeviceGetPowerUsage", "nvmlDeviceSetPowerManagementLimit", "nvmlInit"} <= names
    assert names == set(NVML_CALLS), "NVML_CALLS must list exactly what the agent calls"


@pytest.mark.parametrize("name", NVML_CALLS)
def test_registered_calls_exist_in_pynvml_and_the_simulator(name):
    assert callable(getattr(pynvml, name, None)), f"the installed nvidia-ml-py has no {name}"
    assert callable(getattr(sim, name, None)), f"the simulated driver has no {name}"


@pytest.mark.parametrize(("name", "nargs", "where"), SITES)
def test_each_call_site_binds_to_the_real_signature(name, nargs, where):
    for module in (pynvml, sim):
        sig = inspect.signature(getattr(module, name))
        try:
            sig.bind(*([None] * nargs))
        except TypeError as exc:
            pytest.fail(f"{where}: {module.__name__}.{name}{sig} cannot take {nargs} arguments: {exc}")
