"""`--until` is read as `--since` is: an empty one is refused (exit 2), not taken as now; and the note that nothing
is stored in the window names the whole window when `--until` was given, not only its start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from factory_yaml import write_factory

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    config = write_factory(tmp_path, "n1: {transport: local, sim: h100-sxm, gpus: 1}", controller_interval_s=1)
    store = Store(tmp_path / "state" / "factory.db")
    store.write([NodeSample("n1", 1_790_000_000.0, gpus=(GpuSample("n1", 0, power_w=100.0),))])
    store.close()
    return config


@pytest.mark.parametrize("command", [["export"], ["history", "n1"], ["energy"]])
def test_an_empty_until_is_refused_as_an_empty_since_is(cli: Any, factory: Path, command: list[str]) -> None:
    for option in ("--since", "--until"):
        result = cli("--config", str(factory), "telemetry", *command, option, "")
        assert result.exit_code == 2, (option, result.stderr)
        assert f"{option} `` is neither a duration nor an ISO-8601 time." in result.stderr


def test_the_empty_window_note_names_until_when_given(cli: Any, factory: Path) -> None:
    window = ("--since", "2026-01-01", "--until", "2026-01-02")
    export = cli("--config", str(factory), "telemetry", "export", *window)
    assert export.exit_code == 0, export.stderr
    assert export.stderr == (
        "factoryctl: no stored samples for `all` from 2026-01-01T00:00:00.000Z until 2026-01-02T00:00:00.000Z.\n"
    )
    history = cli("--config", str(factory), "telemetry", "history", "n1", *window)
    assert "no stored power_w for `n1` from 2026-01-01T00:00:00.000Z until 2026-01-02T00:00:00.000Z." in history.stderr
    since_only = cli("--config", str(factory), "telemetry", "export", "--since", "1s")
    assert "no stored samples for `all` since " in since_only.stderr
