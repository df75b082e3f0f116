"""The agent zipapp: contents, caching by content hash, atomic builds, and running with a bare python3."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from factoryctl.transport import bundle


def test_zipapp_holds_the_agent_the_simulator_and_pynvml(zipapp: Path):
    assert zipapp.name.startswith("factoryctl-agent-")
    assert zipapp.suffix == ".pyz"
    names = set(zipfile.ZipFile(zipapp).namelist())
    assert {"__main__.py", "pynvml.py", "factoryctl/__init__.py", "factoryctl/agent/main.py"} <= names
    assert {"factoryctl/sim/nvml.py", "factoryctl/sim/smi.py", "factoryctl/sim/state.py"} <= names
    assert not any("__pycache__" in n or n.startswith(("factoryctl/cli", "factoryctl/model")) for n in names)


def test_default_location_is_the_user_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    path = bundle.agent_zipapp()
    assert path.parent == tmp_path / "xdg-cache" / "factoryctl"
    assert path.is_file()


def test_it_is_built_once_and_reused(tmp_path: Path):
    first = bundle.agent_zipapp(tmp_path)
    mtime = first.stat().st_mtime_ns
    assert bundle.agent_zipapp(tmp_path) == first
    assert first.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [first.name]


def test_the_hash_follows_every_member(tmp_path: Path):
    src = tmp_path / "mod.py"
    src.write_text("A = 1\n")
    members = [("factoryctl/agent/mod.py", src)]
    before = bundle.bundle_hash(members)
    assert bundle.bundle_hash(members) == before
    src.write_text("A = 2\n")
    assert bundle.bundle_hash(members) != before


def test_a_changed_source_gives_a_new_zipapp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    extra = tmp_path / "extra.py"
    extra.write_text("X = 1\n")
    real = bundle.bundle_members

    monkeypatch.setattr(bundle, "bundle_members", lambda: [*real(), ("factoryctl/agent/extra.py", extra)])
    first = bundle.agent_zipapp(tmp_path / "cache")
    extra.write_text("X = 2\n")
    second = bundle.agent_zipapp(tmp_path / "cache")
    assert first != second
    assert zipfile.ZipFile(second).read("factoryctl/agent/extra.py") == b"X = 2\n"


def test_concurrent_first_uses_get_one_valid_archive(tmp_path: Path):
    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda _: bundle.agent_zipapp(tmp_path), range(8)))
    assert len(set(paths)) == 1
    assert zipfile.ZipFile(paths[0]).testzip() is None
    assert [p.name for p in tmp_path.iterdir()] == [paths[0].name]  # no temporary files left behind


def test_runs_with_a_bare_interpreter_and_proc_host_metrics(zipapp: Path, tmp_path: Path):
    """-I -S: no site-packages, so no psutil and no installed factoryctl; everything comes from the archive."""
    argv = [sys.executable, "-I", "-S", str(zipapp), "--node", "bare", "--sim", "l40s", "--gpus", "2"]
    argv += ["--state-dir", str(tmp_path)]
    req = "\n".join(json.dumps({"id": i, "op": "sample"}) for i in (1, 2)) + "\n"
    done = subprocess.run(argv, input=req, capture_output=True, text=True, timeout=30, check=True)
    hello, _, second = (json.loads(line) for line in done.stdout.splitlines())
    assert hello["gpus"] == 2
    host = second["result"]["host"]
    assert host["memory_total_mib"] > 0
    assert host["cpu_pct"] is not None
    assert second["result"]["gpus"][0]["name"] == "NVIDIA L40S"


def _python(major: int, minor: int) -> str | None:
    """A working interpreter of that version, if this machine has one (pyenv shims may exist without one)."""
    import glob
    import shutil

    candidates = sorted(glob.glob(str(Path.home() / f".pyenv/versions/{major}.{minor}.*/bin/python{major}")))
    candidates += [c for c in (shutil.which(f"python{major}.{minor}"),) if c]
    for candidate in candidates:
        try:
            done = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                                  text=True, timeout=10, check=False)  # fmt: skip
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.strip() == f"({major}, {minor})":
            return candidate
    return None


_PYTHON39 = _python(3, 9)
_OLD_PYTHON = _python(3, 8) or _python(3, 6)


@pytest.mark.skipif(_OLD_PYTHON is None, reason="no Python older than 3.9 on this machine")
def test_an_old_python_is_refused_with_a_sentence_and_exit_3(zipapp: Path):
    assert _OLD_PYTHON is not None
    done = subprocess.run(
        [_OLD_PYTHON, str(zipapp), "--node", "n1"], input="", capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 3
    assert done.stdout == ""
    assert "factoryctl-agent needs Python >= 3.9" in done.stderr


@pytest.mark.skipif(_PYTHON39 is None, reason="no Python 3.9 interpreter on this machine")
def test_runs_on_python_3_9(zipapp: Path, tmp_path: Path):
    python = _PYTHON39
    assert python is not None
    argv = [python, "-I", "-S", str(zipapp), "--node", "old", "--sim", "h100-sxm", "--gpus", "2"]
    argv += ["--state-dir", str(tmp_path)]
    reqs = [{"id": 1, "op": "sample"}, {"id": 2, "op": "set_power_limit", "gpus": [0], "watts": 300}]
    req = "".join(json.dumps(r) + "\n" for r in reqs)
    done = subprocess.run(argv, input=req, capture_output=True, text=True, timeout=30, check=True)
    hello, sample, limit = (json.loads(line) for line in done.stdout.splitlines())
    assert hello["python"].startswith("3.9.")
    assert sample["ok"] is True
    assert limit["result"]["gpus"][0]["enforced_w"] == 300.0


def test_the_zipapp_carries_the_smi_shim_and_the_simulated_rank(zipapp: Path, tmp_path: Path):
    base = [sys.executable, str(zipapp)]
    node = ["--node", "z1", "--state-dir", str(tmp_path)]
    done = subprocess.run([*base, "smi", *node, "-pl", "350"], capture_output=True, text=True, timeout=30, check=True)
    assert "All done." in done.stdout
    query = [*base, "smi", *node, "--query-gpu=index,enforced.power.limit", "--format=csv,noheader,nounits", "-i", "0"]
    done = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout == "0, 350.00\n"
    rank = [*base, "sim-rank", *node, "--gpus", "0", "--work-s", "0.2", "--tick-s", "0.05"]
    done = subprocess.run(rank, capture_output=True, text=True, timeout=30, check=True)
    assert "100% done" in done.stdout
