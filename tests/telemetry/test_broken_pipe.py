"""A reader that goes away (`factoryctl ... | head -1`) ends the command quietly with SIGPIPE's status, 141."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_process import CLI_ARGV

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.rows import Event
from factoryctl.store.sqlite import Store


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    """factory.yaml and a store with enough samples to fill a pipe many times over."""
    path = tmp_path / "factory.yaml"
    path.write_text(f"name: t\nstate_dir: {tmp_path / 'state'}\nnodes:\n  n1: {{transport: local}}\n")
    store = Store(tmp_path / "state" / "factory.db")
    now = time.time()
    gpus = tuple(GpuSample("n1", i, power_w=100.0 + i) for i in range(8))
    store.write([NodeSample("n1", now - 3000 + i, gpus=gpus) for i in range(3000)])
    store.add_events([Event(now - 10, "drain", "n1 drained", "n1")])
    store.close()
    return path


def test_export_into_head_exits_141_and_says_nothing(factory: Path) -> None:
    argv = [*CLI_ARGV, "--config", str(factory)]
    proc = subprocess.Popen(
        [*argv, "telemetry", "export", "--since", "1d"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert proc.stdout.readline().startswith(b"time,node,gpu,")
    proc.stdout.close()  # what `head -1` does
    assert proc.wait(30) == 141
    assert proc.stderr.read() == b""
    proc.stderr.close()


class ClosedPipe(io.StringIO):
    """A stdout whose reader has gone away."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_every_command_ends_the_same_way_on_a_closed_stdout(factory: Path, cli: Any, monkeypatch: Any) -> None:
    from factoryctl.cli.app import run

    for args in (["events", "--since", "1h"], ["telemetry", "export", "--since", "1h"]):
        err = io.StringIO()
        monkeypatch.setattr(sys, "stdout", ClosedPipe())
        monkeypatch.setattr(sys, "stderr", err)
        assert run(["--config", str(factory), *args]) == 141
        assert err.getvalue() == ""
