"""A prices file named in factory.yaml (`power.prices`) that cannot be used is a config error (exit 3) naming it.

It was a usage error (exit 2) whose hint said to check a path the user never typed, or for a gzipped file to pipe
it in with `--prices -`, an option never given. The same file given as `--prices FILE` stays a usage error.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from test_price_plugins import factory_yaml

CONFIGURED_HINT = "hint: power.prices in factory.yaml names this file (a relative path is taken from factory.yaml's"
COMMANDS = {
    "show": ("price", "show"),
    "history": ("price", "history"),
    "simulate": (
        "power",
        "simulate",
        "--curve",
        "{curve}",
        "--gpu",
        "tgpu",
        "--workload",
        "bench/toy",
        "--max-throughput-loss",
        "0.05",
        "--price-visibility",
        "day-ahead",
    ),
}


def make_bad_prices(tmp_path: Path, kind: str) -> str:
    """A prices file of `kind` in tmp_path, and what the error says about it."""
    name = {"missing": "gone.csv", "directory": "adir", "gzip": "p.csv.gz", "header": "bad.csv"}[kind]
    if kind == "directory":
        (tmp_path / name).mkdir()
    elif kind == "gzip":
        (tmp_path / name).write_bytes(gzip.compress(b"timestamp_utc,price_per_mwh\n2023-01-01T00:00:00Z,5\n"))
    elif kind == "header":
        (tmp_path / name).write_text("a,b\n1,2\n")
    return name


SAYS = {
    "missing": "cannot read prices file {p}: No such file or directory.",
    "directory": "cannot read prices file {p}: Is a directory.",
    "gzip": "{p}: the prices file looks gzip-compressed, not UTF-8 text.",
    "header": "{p}:1: the prices file lacks column(s) timestamp_utc, price_per_mwh",
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", sorted(SAYS))
def test_an_unusable_configured_prices_file_is_a_config_error(cli, tmp_path, curve_file, kind, command):
    name = make_bad_prices(tmp_path, kind)
    config = factory_yaml(tmp_path, f"power:\n  price_source: csv\n  prices: {name}\n")
    args = [arg.format(curve=curve_file) for arg in COMMANDS[command]]
    result = cli("-c", str(config), *args)
    assert result.exit_code == 3, result.stderr
    assert "factoryctl: " + SAYS[kind].format(p=tmp_path / name) in result.stderr
    assert CONFIGURED_HINT in result.stderr
    assert "--prices" not in result.stderr


@pytest.mark.parametrize("kind", sorted(SAYS))
def test_the_same_file_given_as_an_option_is_still_a_usage_error(cli, tmp_path, kind):
    name = make_bad_prices(tmp_path, kind)
    result = cli("price", "show", "--prices", str(tmp_path / name))
    assert result.exit_code == 2, result.stderr
    assert "power.prices" not in result.stderr
