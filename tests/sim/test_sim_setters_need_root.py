"""The simulated driver's setters as real NVML's: root-only when the node says so, integers only, XIDs in range.

Real `nvmlDeviceSetPowerManagementLimit` "requires root/admin permissions" (NVMLError_NoPermission otherwise) and
pynvml passes the limit through `c_uint(limit)`, a TypeError for a float. The simulated node refuses a non-root
process only when configured with `setters_need_root` (off by default, so a demo runs as any user); the process's
euid is stood in for by `_effective_uid`, so these run the same as root and as any other user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from factoryctl.sim import nvml, smi
from factoryctl.sim.faults import MAX_XID
from factoryctl.sim.state import SimNode

OPERATOR_UID = 1000


@pytest.fixture
def as_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver sees a process whose euid is not 0."""
    monkeypatch.setattr(nvml, "_effective_uid", lambda: OPERATOR_UID)


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nvml, "_effective_uid", lambda: 0)


def test_a_node_whose_setters_need_root_refuses_a_non_root_set(driver: Any, as_operator: None) -> None:
    lib = driver(setters_need_root=True)
    handle = lib.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(lib.NVMLError_NoPermission) as caught:
        lib.nvmlDeviceSetPowerManagementLimit(handle, 300_000)
    assert caught.value.value == lib.NVML_ERROR_NO_PERMISSION == 4
    assert str(caught.value) == "Insufficient Permissions"
    assert lib.nvmlDeviceGetEnforcedPowerLimit(handle) == 700_000  # nothing changed


def test_reset_to_the_default_is_refused_too(driver: Any, as_operator: None) -> None:
    lib = driver(setters_need_root=True)
    handle = lib.nvmlDeviceGetHandleByIndex(1)
    with pytest.raises(lib.NVMLError_NoPermission):
        lib.nvmlDeviceSetPowerManagementLimit(handle, lib.nvmlDeviceGetPowerManagementDefaultLimit(handle))


def test_root_may_set_on_such_a_node(driver: Any, as_root: None) -> None:
    lib = driver(setters_need_root=True)
    handle = lib.nvmlDeviceGetHandleByIndex(0)
    lib.nvmlDeviceSetPowerManagementLimit(handle, 300_000)
    assert lib.nvmlDeviceGetEnforcedPowerLimit(handle) == 300_000


def test_by_default_any_user_may_set(driver: Any, as_operator: None) -> None:
    lib = driver()
    handle = lib.nvmlDeviceGetHandleByIndex(0)
    lib.nvmlDeviceSetPowerManagementLimit(handle, 300_000)
    assert lib.nvmlDeviceGetEnforcedPowerLimit(handle) == 300_000


def test_the_setting_is_the_nodes_and_kept_by_processes_that_do_not_say(tmp_path: Path) -> None:
    state = tmp_path / "state"
    SimNode(state, "n1", profile="h100-sxm", gpus=1, setters_need_root=True)
    assert SimNode(state, "n1").setters_need_root is True  # the nvidia-smi shim passes nothing
    SimNode(state, "n1", setters_need_root=False)
    assert SimNode(state, "n1").setters_need_root is False


@pytest.mark.parametrize("limit", [300_000.7, 300_000.0, "300000"])
def test_a_limit_that_is_not_an_integer_is_a_type_error_as_ctypes_makes_it(driver: Any, limit: Any) -> None:
    lib = driver()
    handle = lib.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(TypeError):
        lib.nvmlDeviceSetPowerManagementLimit(handle, limit)
    assert lib.nvmlDeviceGetEnforcedPowerLimit(handle) == 700_000


def test_an_integer_beyond_32_bits_wraps_as_c_uint_does(driver: Any) -> None:
    lib = driver()
    handle = lib.nvmlDeviceGetHandleByIndex(0)
    lib.nvmlDeviceSetPowerManagementLimit(handle, 2**32 + 300_000)
    assert lib.nvmlDeviceGetEnforcedPowerLimit(handle) == 300_000
    with pytest.raises(lib.NVMLError_InvalidArgument):
        lib.nvmlDeviceSetPowerManagementLimit(handle, -1)  # 4294967295 mW: out of range


def test_the_shim_refuses_pl_to_a_non_root_user_with_exit_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_operator: None
) -> None:
    state = tmp_path / "state"
    SimNode(state, "n1", profile="h100-sxm", gpus=2, setters_need_root=True)
    code = smi.main(["--node", "n1", "--state-dir", str(state), "-pl", "300"])
    out = capsys.readouterr()
    assert code == 4
    assert out.err.strip() == "Failed to set power management limit for GPU 00000000:18:00.0: Insufficient Permissions"
    assert [SimNode(state, "n1").enforced_limit_w(i) for i in (0, 1)] == [700.0, 700.0]


def test_the_shim_sets_for_root_on_the_same_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_root: None
) -> None:
    state = tmp_path / "state"
    SimNode(state, "n1", profile="h100-sxm", gpus=2, setters_need_root=True)
    assert smi.main(["--node", "n1", "--state-dir", str(state), "-pl", "300"]) == 0
    assert [SimNode(state, "n1").enforced_limit_w(i) for i in (0, 1)] == [300.0, 300.0]


@pytest.mark.parametrize("xid", [0, -1, MAX_XID + 1, 99999999999999999999])
def test_an_xid_outside_an_unsigned_64_bit_event_is_refused(tmp_path: Path, xid: int) -> None:
    node = SimNode(tmp_path / "state", "n1", profile="h100-sxm", gpus=1)
    with pytest.raises(ValueError, match="positive XID code"):
        node.inject("xid", [0], xid)
    assert node.events_after(0) == []


def test_the_largest_xid_is_delivered_whole(driver: Any) -> None:
    lib = driver()
    events = lib.nvmlEventSetCreate()
    lib.nvmlDeviceRegisterEvents(lib.nvmlDeviceGetHandleByIndex(0), lib.nvmlEventTypeXidCriticalError, events)
    nvml.sim_node().inject("xid", [0], MAX_XID)
    assert lib.nvmlEventSetWait_v2(events, 1000).eventData == MAX_XID
