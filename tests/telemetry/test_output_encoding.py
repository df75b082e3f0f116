"""Output on a stdout that cannot write Unicode (an ASCII or latin-1 locale, `PYTHONIOENCODING=ascii`).

`telemetry history` crashed there ("unexpected error: UnicodeEncodeError") on its trend column of block characters.
Real processes, since the encoding is the interpreter's own stdout's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from factory_yaml import write_factory

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = write_factory(tmp_path, "n1: {transport: local, sim: h100-sxm, gpus: 2, labels: {site: Zürich}}")
    store = Store(tmp_path / "state" / "factory.db")
    start = time.time() - 120
    store.write(
        [NodeSample("n1", start + s, gpus=(GpuSample("n1", 0, uuid="GPU-0", power_w=100.0 + s),)) for s in range(120)]
    )
    store.close()
    return path


def _run(config: Path, encoding: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    argv = [sys.executable, "-m", "factoryctl", "--config", str(config), *args]
    return subprocess.run(argv, capture_output=True, env=env, timeout=120, text=True, encoding=encoding)


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_history_draws_its_trend_in_ascii(isolated_home: Path, factory: Path, encoding: str) -> None:
    result = _run(factory, encoding, "telemetry", "history", "n1/0", "--since", "10m")
    assert result.returncode == 0, result.stderr
    trend = result.stdout.splitlines()[1].split()[-1]
    assert len(trend) > 1
    assert set(trend) <= set("_.-:=+*#")


@pytest.mark.parametrize("form", ["json", "yaml"])
def test_json_and_yaml_escape_what_stdout_cannot_write(isolated_home: Path, factory: Path, form: str) -> None:
    import yaml

    result = _run(factory, "ascii", "config", "show", "-o", form)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout) if form == "json" else yaml.safe_load(result.stdout)
    assert "Zürich" in json.dumps(document, ensure_ascii=False)
