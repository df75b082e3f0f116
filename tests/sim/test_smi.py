"""The nvidia-smi shim answers the query and -pl forms from the same state as the driver."""

from __future__ import annotations

import subprocess

import pytest

from factoryctl.sim import smi
from factoryctl.sim.state import SimNode


@pytest.fixture
def run(tmp_path, capsys):
    SimNode(tmp_path / "state", "n1", profile="h100-sxm", gpus=2, unsupported=["ecc_uncorrected"])

    def call(*args: str) -> tuple[int, str]:
        code = smi.main(["--node", "n1", "--state-dir", str(tmp_path / "state"), *args])
        out = capsys.readouterr()
        return code, out.out + out.err

    return call


def test_query_gpu_csv_noheader_nounits(run):
    code, out = run(
        "--query-gpu=index,name,uuid,power.draw,enforced.power.limit,power.min_limit,memory.total,"
        "clocks_event_reasons.active,ecc.errors.uncorrected.volatile.total",
        "--format=csv,noheader,nounits",
    )
    assert code == 0
    rows = [line.split(", ") for line in out.splitlines()]
    assert len(rows) == 2
    index, name, uuid, power, limit, low, total, reasons, ecc = rows[1]
    assert (index, name, limit, low, total) == ("1", "NVIDIA H100 80GB HBM3", "700.00", "200.00", "81920")
    assert uuid.startswith("GPU-")
    assert 20 < float(power) <= 700
    assert reasons.startswith("0x")
    assert len(reasons) == 18
    assert ecc == "[N/A]"


def test_header_and_units(run):
    code, out = run("--query-gpu=index,power.draw,memory.used", "--format=csv", "-i", "0")
    assert code == 0
    header, row = out.splitlines()
    assert header == "index, power.draw [W], memory.used [MiB]"
    assert row.split(", ")[1].endswith(" W")


def test_power_limit_set_and_refused_like_nvidia_smi(run):
    code, out = run("-i", "1", "-pl", "900")
    assert code == 2
    assert "between 200.00 W and 700.00 W" in out
    code, out = run("--query-gpu=enforced.power.limit", "--format=csv,noheader,nounits")
    assert out.split() == ["700.00", "700.00"]
    code, out = run("-i", "1", "-pl", "450")
    assert code == 0
    assert "set to 450.00 W from 700.00 W" in out
    code, out = run("--query-gpu=enforced.power.limit", "--format=csv,noheader,nounits")
    assert out.split() == ["700.00", "450.00"]


def test_unknown_field_and_bad_index_fail(run):
    assert run("--query-gpu=warp.speed", "--format=csv")[0] == 2
    assert run("--query-gpu=index", "--format=csv", "-i", "7")[0] == 6
    assert run("--frobnicate")[0] == 2


def test_lost_gpu_prints_gpu_is_lost(tmp_path, run):
    SimNode(tmp_path / "state", "n1").inject("lost", gpus=[0])
    code, out = run("--query-gpu=index,power.draw", "--format=csv,noheader,nounits")
    assert code == 0
    assert out.splitlines()[0] == "[GPU is lost], [GPU is lost]"


def test_a_lost_gpu_has_no_handle_yet_list_and_set_say_so_as_nvidia_smi_does(tmp_path, run):
    # the driver refuses a lost GPU's handle (NVML_ERROR_GPU_IS_LOST): the shim must not end in a traceback
    SimNode(tmp_path / "state", "n1").inject("lost", gpus=[0])
    code, out = run("-L")
    assert code == 0
    assert out.splitlines()[0] == "GPU 0: [GPU is lost]"
    code, out = run("-pl", "300")
    assert code == 15
    assert "Unable to determine the device handle for GPU 00000000:" in out
    assert "GPU is lost" in out


def test_written_shim_is_an_executable_nvidia_smi(tmp_path, run):
    shim = smi.write_shim(tmp_path / "bin" / "nvidia-smi", "n1", state_dir=str(tmp_path / "state"))
    done = subprocess.run([str(shim), "-pl", "300"], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [str(shim), "--query-gpu=power.limit", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["300.00", "300.00"]
