"""The factory.yaml of the store-backed telemetry tests: lab `t`, its state (the SQLite store) under tmp_path/state.

Each test gives its own nodes; the rest of the file is the same everywhere, so it is written here once.
"""

from __future__ import annotations

from pathlib import Path


def write_factory(tmp_path: Path, nodes: str, controller_interval_s: int | None = None) -> Path:
    """tmp_path/factory.yaml with `nodes` (one `name: {...}` entry) and, if given, the controller's interval."""
    path = tmp_path / "factory.yaml"
    controller = "" if controller_interval_s is None else f"controller:\n  interval_s: {controller_interval_s}\n"
    path.write_text(f"name: t\nstate_dir: {tmp_path / 'state'}\nnodes:\n  {nodes}\n{controller}")
    return path
