"""`controller status -o json` gives `interval_s` as one type, a float (`1.0`), whoever stored the figures.

The review saw `1.0` while the controller ran and `1` after it was killed; the figures in the store are read back
as JSON, so an integer stored there (an older controller's, a hand-edited store) came out as an integer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from factoryctl.store.rows import STATS_KEY
from factoryctl.store.sqlite import Store


def test_interval_is_a_float_running_or_not(cli: Any, tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nnodes: {{n1: {{transport: local}}}}\n")
    store = Store(tmp_path / "state" / "factory.db")
    store.set_meta(STATS_KEY, json.dumps({"pid": os.getpid() + 1, "interval_s": 1, "nodes": 1}))
    store.close()
    result = cli("--config", str(config), "controller", "status", "-o", "json")
    assert result.exit_code == 1  # none runs
    assert '"interval_s": 1.0,' in result.stdout
    assert result.json()["stats"]["interval_s"] == 1.0
