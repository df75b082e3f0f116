"""Times the controller and its status print: UTC with `Z` in the log (it was local time without an offset, hours
apart from `events` under TZ=Pacific/Chatham), and never a negative sample age (a clock a little ahead)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z INFO factoryctl\.test: hello$")


def test_the_controller_logs_in_utc_whatever_the_timezone() -> None:
    code = "from factoryctl.controller import configure_logging; import logging; configure_logging();"
    code += " logging.getLogger('factoryctl.test').info('hello')"
    env = {**os.environ, "TZ": "Pacific/Chatham"}  # UTC+12:45 or +13:45: never UTC
    before = time.time()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    line = result.stderr.strip()
    found = LOG_LINE.match(line)
    assert found, line
    logged = datetime.fromisoformat(found.group(1)).replace(tzinfo=timezone.utc).timestamp()
    assert before - 60 < logged < time.time() + 60  # an offset would be 12 h or more


def test_status_never_reports_a_negative_sample_age(cli: Any, tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nnodes: {{n1: {{transport: local}}}}\n")
    store = Store(tmp_path / "state" / "factory.db")
    store.write([NodeSample("n1", time.time() + 30, gpus=(GpuSample("n1", 0, power_w=1.0),))])  # a node's clock ahead
    store.close()
    doc = cli("--config", str(config), "controller", "status", "-o", "json").json()
    assert doc["newest_sample_age_s"] >= 0.0  # judged by when it was stored (on this clock), never negative
