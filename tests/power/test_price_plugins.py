"""Price-source plugins as real distributions: the example plugin of docs/power.md, built exactly as written.

Each plugin here is a real installed distribution to importlib.metadata: a `<name>.dist-info` directory (METADATA
and entry_points.txt) and the module beside it, in a temporary directory put on sys.path, so the entry point is
found, listed and loaded the way pip-installed plugins are. No mocks.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from factoryctl.config import parse_config
from factoryctl.live.grid import GridPrice
from factoryctl.power.plugins import open_price_source

DOCS = Path(__file__).resolve().parents[2] / "docs" / "power.md"
GROUP = "factoryctl.price_sources.v1"
HOUR = 3600

MakeDist = Callable[..., Path]


def doc_block(title: str) -> str:
    """The fenced block of docs/power.md whose first line is `# title`."""
    for block in re.findall(r"```[a-z]*\n(.*?)```", DOCS.read_text(), flags=re.DOTALL):
        if block.startswith(f"# {title}\n"):
            return block
    raise AssertionError(f"docs/power.md has no block starting `# {title}`")


def pyproject_plugin(text: str) -> tuple[str, dict[str, str]]:
    """(project name, the price-source entry points) of a pyproject.toml (tomllib is not in Python 3.10)."""
    tables: dict[str, dict[str, str]] = {}
    table = ""
    for line in text.splitlines():
        if line.startswith("["):
            table = line.strip("[] ")
        elif "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            tables.setdefault(table, {})[key.strip().strip('"')] = value.strip().strip('"')
    return tables["project"]["name"], tables[f'project.entry-points."{GROUP}"']


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeDist]:
    """Install a distribution into a fresh sys.path directory: `make_dist(name, {ep: value}, {module: source})`."""
    created: list[str] = []
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))

    def make(name: str, entries: dict[str, str] | bytes, modules: dict[str, str]) -> Path:
        info = root / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        if isinstance(entries, bytes):
            (info / "entry_points.txt").write_bytes(entries)
        else:
            lines = "".join(f"{key} = {value}\n" for key, value in entries.items())
            (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}")
        for module, source in modules.items():
            (root / f"{module}.py").write_text(source)
            created.append(module)
        import importlib

        importlib.invalidate_caches()
        return root

    yield make
    for module in created:
        sys.modules.pop(module, None)


@pytest.fixture
def docs_plugin(make_dist: MakeDist) -> str:
    """The example plugin of docs/power.md, from its pyproject.toml and module blocks; returns its source name."""
    name, entries = pyproject_plugin(doc_block("pyproject.toml"))
    (module,) = {value.partition(":")[0] for value in entries.values()}
    make_dist(name, entries, {module: doc_block(f"{module}.py")})
    (source,) = entries
    return source


def factory_yaml(tmp_path: Path, power: str) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(f"name: lab\nnodes:\n  n1: {{transport: local}}\n{power}")
    return path


def test_the_docs_example_plugin_is_listed_shown_and_resolved(cli, tmp_path, docs_plugin):
    listed = cli("price", "sources", "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    rows = {(i["name"], i["package"], i["status"]) for i in listed.json()["items"]}
    assert {("csv", "factoryctl", "built-in"), (docs_plugin, "fcpl-flat", "plugin")} <= rows
    assert listed.stderr == ""

    config = factory_yaml(tmp_path, doc_block("factory.yaml"))
    assert cli("-c", str(config), "config", "validate").exit_code == 0
    shown = cli("-c", str(config), "price", "show", "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    item = shown.json()
    assert (item["price_per_mwh"], item["source"], item["stale"]) == (42.5, docs_plugin, False)
    hour = int(time.time()) // HOUR * HOUR
    since, until = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) for t in (hour - 2 * HOUR, hour + HOUR))
    history = cli("-c", str(config), "price", "history", "--since", since, "--until", until, "-o", "json")
    assert [i["price_per_mwh"] for i in history.json()["items"]] == [42.5] * 3

    source = open_price_source(docs_plugin, "7", tmp_path)
    points = source.fetch()
    assert len(points) == 48
    assert {p.price_per_mwh for p in points} == {7.0}
    now = int(time.time()) // HOUR * HOUR
    assert [p.timestamp_s for p in source.fetch(now, now + 2 * HOUR)] == [now, now + HOUR]


def test_history_inside_one_of_the_plugins_hours_lists_that_hour(cli, tmp_path, docs_plugin):
    """The row in force at --since comes from the plugin as from a file: 15 to 45 minutes into an hour lists it."""
    config = factory_yaml(tmp_path, doc_block("factory.yaml"))
    hour = int(time.time()) // HOUR * HOUR - 2 * HOUR  # well inside the plugin's day back, whenever it fetches
    since, until = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hour + m * 60)) for m in (15, 45))
    history = cli("-c", str(config), "price", "history", "--since", since, "--until", until, "-o", "json")
    assert history.exit_code == 0, history.stderr
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hour))
    assert [(i["timestamp_utc"], i["price_per_mwh"]) for i in history.json()["items"]] == [(stamp, 42.5)]


def test_power_simulate_uses_the_configured_source(cli, tmp_path, docs_plugin, curve_file):
    config = factory_yaml(tmp_path, doc_block("factory.yaml"))
    args = ("--curve", str(curve_file), "--gpu", "tgpu", "--workload", "bench/toy", "--max-throughput-loss", "0.05")
    result = cli("-c", str(config), "power", "simulate", *args, "--price-visibility", "day-ahead", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["intervals"] == 48


def test_the_dashboard_shows_the_plugins_price(tmp_path, docs_plugin):
    config = factory_yaml(tmp_path, doc_block("factory.yaml"))
    grid = GridPrice(parse_config(config.read_text(), config, tmp_path / "state"))
    price, cost = grid.now(time.time(), power_kw=1000.0)
    assert price is not None
    assert price.price_per_mwh == 42.5
    assert cost == pytest.approx(42.5)
    assert grid.error is None


def test_without_prices_or_a_configured_source_the_commands_say_what_to_do(cli, tmp_path):
    config = factory_yaml(tmp_path, "")
    result = cli("-c", str(config), "price", "show")
    assert result.exit_code == 2
    assert "no --prices FILE was given" in result.stderr
    assert "power.price_source" in result.stderr


def test_the_configured_csv_is_read_relative_to_factory_yaml(cli, tmp_path, monkeypatch):
    now = int(time.time()) // HOUR * HOUR
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    (tmp_path / "p.csv").write_text(f"timestamp_utc,price_per_mwh\n{stamp},-12.5\n")
    config = factory_yaml(tmp_path, "power:\n  price_source: csv\n  prices: p.csv\n")
    monkeypatch.chdir(tmp_path.parent)
    result = cli("-c", str(config), "price", "show", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert (result.json()["price_per_mwh"], result.json()["source"]) == (-12.5, "csv")
