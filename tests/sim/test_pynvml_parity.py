"""The simulated driver exposes pynvml's names, signatures, error classes and constants, so code cannot tell."""

from __future__ import annotations

import inspect

import pynvml
import pytest

from factoryctl.sim import nvml as sim

SIM_ONLY = {"configure", "sim_node", "unsupported_functions"}
SIM_FUNCTIONS = sorted(
    name
    for name, obj in vars(sim).items()
    if name.startswith("nvml") and inspect.isfunction(obj) and obj.__module__.startswith("factoryctl.sim")
)


def _params(fn: object) -> list[tuple[str, object]]:
    sig = inspect.signature(fn)  # follows functools.wraps (pynvml's convertStrBytes)
    return [(p.name, p.default) for p in sig.parameters.values()]


def test_there_is_something_to_compare():
    assert len(SIM_FUNCTIONS) > 30


@pytest.mark.parametrize("name", SIM_FUNCTIONS)
def test_every_simulated_function_exists_in_pynvml_with_the_same_signature(name):
    real = getattr(pynvml, name, None)
    assert callable(real), f"pynvml has no {name}"
    assert _params(getattr(sim, name)) == _params(real)


def test_error_classes_match_pynvml():
    sim_classes = {n for n in dir(sim) if n.startswith("NVMLError_")}
    assert {"NVMLError_NotSupported", "NVMLError_GpuIsLost", "NVMLError_InvalidArgument"} <= sim_classes
    for name in sim_classes:
        real = getattr(pynvml, name)
        assert getattr(sim, name)().value == real().value, name
    for code in (1, 2, 3, 4, 15, 999):
        assert type(sim.NVMLError(code)).__name__ == type(pynvml.NVMLError(code)).__name__


def test_constants_match_pynvml():
    names = [n for n in dir(sim) if n.startswith(("NVML_", "nvmlClocks", "nvmlEventType")) and n != "NVML_SUCCESS"]
    assert len(names) > 40
    for name in names:
        assert getattr(sim, name) == getattr(pynvml, name), name


def test_the_package_exposes_the_pynvml_names_lazily():
    import factoryctl.sim

    assert factoryctl.sim.nvmlDeviceGetPowerUsage is sim.nvmlDeviceGetPowerUsage
    assert factoryctl.sim.NVMLError_GpuIsLost is sim.NVMLError_GpuIsLost
    with pytest.raises(AttributeError):
        factoryctl.sim.not_a_thing  # noqa: B018


def test_every_pynvml_error_code_and_class_exists_with_its_value_and_text():
    from factoryctl.sim import errors

    real = {n for n in dir(pynvml) if n.startswith(("NVMLError_", "NVML_ERROR_"))}
    assert real - set(dir(errors)) == set()
    for name in (n for n in real if n.startswith("NVML_ERROR_")):
        code = getattr(pynvml, name)
        assert getattr(errors, name) == code, name
        assert type(sim.NVMLError(code)).__name__ == type(pynvml.NVMLError(code)).__name__, name
        assert str(sim.NVMLError(code)) == str(pynvml.NVMLError(code)), name
