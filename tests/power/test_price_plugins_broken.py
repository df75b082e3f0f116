"""Broken price-source plugins are one sentence naming the plugin and its package, never a traceback or a guess.

Every plugin is a real distribution on sys.path (`make_dist` of test_price_plugins): an import error, a raising
constructor, a module where a class belongs, bad data (tuples, NaN, unsorted or repeated times, strings), a
non-UTF-8 entry_points.txt, a plugin that takes the built-in's name, and unknown or miscased names in factory.yaml.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import test_price_plugins
from test_price_plugins import factory_yaml

from factoryctl.config import parse_config
from factoryctl.errors import ConfigError
from factoryctl.live.grid import GridPrice
from factoryctl.power.plugins import PriceSourceError, open_price_source

make_dist = test_price_plugins.make_dist  # the fixture that installs a distribution, shared by name
HOUR = 3600
GOOD_FETCH = """
import time
from factoryctl.model.power import PricePoint
class Source:
    def __init__(self, prices):
        self.prices = prices
    def fetch(self, start_s=None, end_s=None):
        now = int(time.time()) // 3600 * 3600
        return {data}
"""
BAD_DATA = {
    "tuples": ("[(now, 50.0)]", "item 0: (", "is a tuple, not a factoryctl.model.power.PricePoint"),
    "nan": ("[PricePoint(now, float('nan'))]", "item 0: price_per_mwh is nan", "an unknown price is None"),
    "unsorted": ("[PricePoint(now, 1.0), PricePoint(now - 3600, 2.0)]", "item 1: ", "repeats or goes back"),
    "repeated": ("[PricePoint(now, 1.0), PricePoint(now, 2.0)]", "item 1: ", "repeats or goes back"),
    "string": ("[PricePoint(now, '0.05 EUR/kWh')]", "item 0: price_per_mwh is '0.05 EUR/kWh'", "not a float"),
    "huge": ("[PricePoint(now, -5e9)]", "item 0: price_per_mwh -5000000000 is beyond", "per MWh"),
    "float_time": ("[PricePoint(float(now), 1.0)]", "item 0: timestamp_s is ", "not an int"),
    "none": ("None", "returned NoneType, not a sequence of PricePoint", ""),
}


def show(cli, tmp_path: Path, name: str):
    config = factory_yaml(tmp_path, f"power:\n  price_source: {name}\n")
    return cli("-c", str(config), "price", "show")


def one_sentence(result, *parts: str) -> None:
    """Exit 1, the sentence naming the plugin and its package plus the parts, a hint, and no traceback."""
    assert result.exit_code == 1, result.stderr
    first, hint = result.stderr.splitlines()
    for part in parts:
        assert part in first
    assert hint.startswith("hint: fix or uninstall that package")
    assert "Traceback" not in result.stderr


def test_an_import_error_names_the_plugin_and_package(cli, tmp_path, make_dist):
    make_dist("fcpl-imp", {"imp": "fcpl_imp:Source"}, {"fcpl_imp": "import no_such_module_fcpl\n"})
    one_sentence(
        show(cli, tmp_path, "imp"),
        "price source `imp` (package fcpl-imp) failed to import fcpl_imp:Source:",
        "ModuleNotFoundError: No module named 'no_such_module_fcpl'",
    )


def test_a_raising_constructor_a_missing_class_and_a_non_callable(cli, tmp_path, make_dist):
    module = (
        "class Source:\n    def __init__(self, prices):\n        raise ValueError('no API key in FCPL_KEY')\nX = 4\n"
    )
    entries = {"boom": "fcpl_boom:Source", "gone": "fcpl_boom:Missing", "four": "fcpl_boom:X"}
    make_dist("fcpl-boom", entries, {"fcpl_boom": module})
    one_sentence(show(cli, tmp_path, "boom"), "(package fcpl-boom) failed to start: ValueError: no API key in FCPL_KEY")
    one_sentence(show(cli, tmp_path, "gone"), "`gone` (package fcpl-boom) failed to import fcpl_boom:Missing")
    one_sentence(show(cli, tmp_path, "four"), "fcpl_boom:X is not a class or factory (it is of type int)")


@pytest.mark.parametrize("kind", sorted(BAD_DATA))
def test_bad_data_is_refused_with_what_is_wrong(cli, tmp_path, make_dist, kind):
    data, *parts = BAD_DATA[kind]
    module = f"fcpl_bad_{kind}"
    make_dist(f"fcpl-bad-{kind}", {kind: f"{module}:Source"}, {module: GOOD_FETCH.format(data=data)})
    one_sentence(show(cli, tmp_path, kind), f"price source `{kind}` (package fcpl-bad-{kind}) returned", *parts)
    with pytest.raises(PriceSourceError):
        open_price_source(kind, None).fetch()


def test_negative_prices_are_real_prices(cli, tmp_path, make_dist):
    make_dist("fcpl-neg", {"neg": "fcpl_neg:Source"}, {"fcpl_neg": GOOD_FETCH.format(data="[PricePoint(now, -80.5)]")})
    result = show(cli, tmp_path, "neg")
    assert result.exit_code == 0, result.stderr
    assert " -80.5 " in result.stdout


def test_a_failing_plugin_is_the_dashboards_price_error(tmp_path, make_dist):
    make_dist("fcpl-down", {"down": "fcpl_down:Source"}, {"fcpl_down": GOOD_FETCH.format(data="1 / 0")})
    config = factory_yaml(tmp_path, "power:\n  price_source: down\n")
    grid = GridPrice(parse_config(config.read_text(), config, tmp_path / "state"))
    assert grid.now(time.time(), 10.0) == (None, None)
    assert grid.error == (
        "price source `down` (package fcpl-down) failed to fetch prices: ZeroDivisionError: division by zero."
    )
    make_dist("fcpl-noimp", {"noimp": "fcpl_noimp:Source"}, {"fcpl_noimp": "raise RuntimeError('boom at load')\n"})
    config = factory_yaml(tmp_path, "power:\n  price_source: noimp\n")
    grid = GridPrice(parse_config(config.read_text(), config, tmp_path / "state"))
    assert grid.outlook(time.time()) == ()
    assert grid.error is not None
    assert "(package fcpl-noimp) failed to import" in grid.error


def test_a_non_utf8_entry_points_file_is_one_warning_and_the_rest_are_listed(cli, make_dist):
    make_dist("fcpl-latin", b"[factoryctl.price_sources.v1]\nprix = fcpl_latin:Source # \xe9t\xe9\n", {})
    make_dist("fcpl-ok", {"ok": "fcpl_ok:Source"}, {})
    result = cli("price", "sources")
    assert result.exit_code == 0, result.stderr
    assert "factoryctl: warning: cannot read the entry points of package fcpl-latin (" in result.stderr
    assert "UnicodeDecodeError" in result.stderr
    assert "Traceback" not in result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert {"ok", "csv"} <= set(names)
    assert "prix" not in names


def test_a_plugin_taking_the_builtin_name_is_flagged_and_never_used(cli, tmp_path, make_dist):
    module = "class Source:\n    def __init__(self, prices):\n        raise SystemError('must not run')\n"
    make_dist("fcpl-clash", {"csv": "fcpl_clash:Source", "mod": "fcpl_clash"}, {"fcpl_clash": module})
    listed = cli("price", "sources", "-o", "wide")
    assert listed.exit_code == 0
    assert "warning: package fcpl-clash registers price source `csv` (fcpl_clash:Source), the name of the" in (
        listed.stderr
    )
    assert "the built-in factoryctl.power.sources:CsvPriceSource is used" in listed.stderr
    assert "warning: package fcpl-clash: price source `mod`: `fcpl_clash` does not name a class or factory" in (
        listed.stderr
    )
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert ["csv", "fcpl_clash:Source", "shadowed", "fcpl-clash"] in rows
    assert ["mod", "fcpl_clash", "invalid", "fcpl-clash"] in rows
    (tmp_path / "p.csv").write_text("timestamp_utc,price_per_mwh\n2023-01-01T00:00:00Z,5\n")
    config = factory_yaml(tmp_path, "power:\n  price_source: csv\n  prices: p.csv\n")
    shown = cli("-c", str(config), "price", "show", "--at", "2023-01-01T00:30:00Z")
    assert shown.exit_code == 0, shown.stderr
    assert "registers price source `csv`" in shown.stderr
    invalid = cli("-c", str(factory_yaml(tmp_path, "power:\n  price_source: mod\n")), "config", "validate")
    assert invalid.exit_code == 0  # a warning: a broken price feed must not stop `nodes` or `power reset`
    assert "power.price_source: price source `mod` of package fcpl-clash is broken" in invalid.stderr


@pytest.mark.parametrize(
    ("power", "says"),
    [
        ("  price_source: nord\n", "no price source `nord` is installed; installed: `csv`"),
        ("  price_source: CSV\n  prices: p.csv\n", "no price source `CSV` is installed; did you mean `csv`?"),
        ("  price_source: csv\n", "power.prices names no file"),
    ],
)
def test_a_price_source_that_cannot_give_prices_stops_only_the_price_commands(cli, tmp_path, power, says):
    """A missing price feed is a warning to `config validate` and an error to the commands that read prices; the
    nodes can still be listed and their limits reset (refusing every command for it was the wrong way to fail)."""
    config = factory_yaml(tmp_path, f"power:\n{power}")
    validated = cli("-c", str(config), "config", "validate")
    assert validated.exit_code == 0, validated.stderr
    assert "warning: " in validated.stderr
    shown = cli("-c", str(config), "price", "show")
    assert shown.exit_code == 3, shown.stderr
    assert says in shown.stderr
    listed = cli("-c", str(config), "nodes", "list", "-o", "json")  # its node has no GPU driver here: exit 1
    assert [item["node"] for item in listed.json()["items"]] == ["n1"]
    assert "price" not in listed.stderr
    with pytest.raises(ConfigError, match="did you mean `csv`"):
        open_price_source("Csv", "p.csv")


@pytest.mark.parametrize("command", [("price", "show"), ("price", "history")])
def test_without_prices_and_without_a_factory_yaml_it_is_a_usage_error(cli, command):
    """Someone who forgot --prices is told so (exit 2), not asked to write a factory.yaml (exit 3)."""
    result = cli(*command)
    assert result.exit_code == 2, result.stderr
    assert "no --prices FILE was given" in result.stderr
    assert "factoryctl init" not in result.stderr


def test_config_validate_loads_the_source_and_warns_when_it_cannot(cli, tmp_path, make_dist):
    """A plugin that fails to import and a CSV of prices that is not there are found by `config validate` (a
    warning, exit 0), not first by the dashboard or by a cron job at night."""
    make_dist("fcpl-late", {"late": "fcpl_late:Source"}, {"fcpl_late": "raise ImportError('needs requests')\n"})
    broken = cli("-c", str(factory_yaml(tmp_path, "power:\n  price_source: late\n")), "config", "validate")
    assert broken.exit_code == 0, broken.stderr
    assert "power.price_source: price source `late` (package fcpl-late) failed to import fcpl_late:Source" in (
        broken.stderr
    )
    missing = cli(
        "-c", str(factory_yaml(tmp_path, "power:\n  price_source: csv\n  prices: p.csv\n")), "config", "validate"
    )
    assert missing.exit_code == 0, missing.stderr
    assert f"warning: {tmp_path / 'factory.yaml'}: power.prices: {tmp_path / 'p.csv'} is not a file" in missing.stderr
    (tmp_path / "p.csv").write_text("timestamp_utc,price_per_mwh\n2023-01-01T00:00:00Z,5\n")
    present = cli(
        "-c", str(factory_yaml(tmp_path, "power:\n  price_source: csv\n  prices: p.csv\n")), "config", "validate"
    )
    assert present.exit_code == 0
    assert "warning" not in present.stderr


def test_a_plugin_whose_fetch_hangs_is_an_error_not_a_hang(cli, tmp_path, make_dist, monkeypatch):
    """The backstop timeout: a plugin that never returns from fetch (a feed without its own timeout) ends the
    command with one sentence naming it, and the dashboard's price shows the error."""
    import factoryctl.power.plugins as plugins

    module = "import threading\nRELEASE = threading.Event()\nclass Source:\n    def __init__(self, prices):\n"
    module += (
        "        pass\n    def fetch(self, start_s=None, end_s=None):\n        RELEASE.wait()\n        return []\n"
    )
    make_dist("fcpl-hang", {"hang": "fcpl_hang:Source"}, {"fcpl_hang": module})
    monkeypatch.setattr(plugins, "PLUGIN_FETCH_TIMEOUT_S", 0.2)
    try:
        result = show(cli, tmp_path, "hang")
        assert result.exit_code == 1, result.stderr
        first, hint = result.stderr.splitlines()
        assert first.endswith(
            "price source `hang` (package fcpl-hang) gave no prices within 0.2 s (its fetch is still running)."
        )
        assert "the plugin's own timeouts" in hint
        config = factory_yaml(tmp_path, "power:\n  price_source: hang\n")
        grid = GridPrice(parse_config(config.read_text(), config, tmp_path / "state"))
        assert grid.now(time.time(), 10.0) == (None, None)
        assert grid.error is not None
        assert "gave no prices within 0.2 s" in grid.error
    finally:
        import fcpl_hang  # type: ignore[import-not-found]

        fcpl_hang.RELEASE.set()
