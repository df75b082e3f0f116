"""A plugin whose import or constructor never returns is an error within the time limit, not a hang.

Plugins often log in to their feed in `__init__`; one without its own timeout used to hang `price show`, `config
validate` and the dashboard forever, as only `fetch` had the backstop. The plugins here wait on an event the test
sets at the end, so no thread outlives the test; the limit is cut to 0.2 s.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_price_plugins
from test_price_plugins import factory_yaml

import factoryctl.power.plugins as plugins
from factoryctl.config import parse_config
from factoryctl.live.grid import GridPrice

make_dist = test_price_plugins.make_dist  # the fixture that installs a distribution, shared by name
GATE = "import threading\nRELEASE = threading.Event()\n"
SLOW_CONSTRUCTOR = """
import fcpl_gate
class Source:
    def __init__(self, prices):
        fcpl_gate.RELEASE.wait()
    def fetch(self, start_s=None, end_s=None):
        return []
"""
SLOW_IMPORT = "import fcpl_gate\nfcpl_gate.RELEASE.wait()\nclass Source:\n    pass\n"


@pytest.fixture
def slow_plugins(make_dist, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`ctorhang` (package fcpl-ctor) hangs in its constructor, `importhang` (fcpl-imph) as it is imported."""
    make_dist("fcpl-gate", {}, {"fcpl_gate": GATE})
    make_dist("fcpl-ctor", {"ctorhang": "fcpl_ctor:Source"}, {"fcpl_ctor": SLOW_CONSTRUCTOR})
    make_dist("fcpl-imph", {"importhang": "fcpl_imph:Source"}, {"fcpl_imph": SLOW_IMPORT})
    monkeypatch.setattr(plugins, "PLUGIN_FETCH_TIMEOUT_S", 0.2)
    try:
        yield
    finally:
        gate = sys.modules.get("fcpl_gate")
        if gate is not None:
            gate.RELEASE.set()
            time.sleep(0.1)  # the released threads finish their import before the modules are forgotten


@pytest.mark.parametrize(("name", "package"), [("ctorhang", "fcpl-ctor"), ("importhang", "fcpl-imph")])
def test_price_show_ends_with_one_sentence(cli, tmp_path: Path, slow_plugins, name: str, package: str) -> None:
    config = factory_yaml(tmp_path, f"power:\n  price_source: {name}\n")
    started = time.monotonic()
    result = cli("-c", str(config), "price", "show")
    assert time.monotonic() - started < 5
    assert result.exit_code == 1, result.stderr
    first, hint = result.stderr.splitlines()
    assert first == (
        f"factoryctl: price source `{name}` (package {package}) did not start within 0.2 s"
        " (its import or constructor is still running)."
    )
    assert "the plugin's own timeouts" in hint
    assert "fix or uninstall that package" in hint


def test_config_validate_warns_and_ends(cli, tmp_path: Path, slow_plugins) -> None:
    result = cli("-c", str(factory_yaml(tmp_path, "power:\n  price_source: ctorhang\n")), "config", "validate")
    assert result.exit_code == 0, result.stderr
    assert ": ok, 1 node, 0 groups" in result.stdout
    assert "power.price_source: price source `ctorhang` (package fcpl-ctor) did not start within 0.2 s" in (
        result.stderr
    )


def test_the_dashboard_shows_the_error(tmp_path: Path, slow_plugins) -> None:
    config = factory_yaml(tmp_path, "power:\n  price_source: ctorhang\n")
    grid = GridPrice(parse_config(config.read_text(), config, tmp_path / "state"))
    assert grid.now(time.time(), 10.0) == (None, None)
    assert grid.error is not None
    assert "`ctorhang` (package fcpl-ctor) did not start within 0.2 s" in grid.error
