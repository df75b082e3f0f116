"""factory.yaml's price source is opened in one place (power/configured_prices.py), and refused in one wording.

`power plan / apply / diff / status` refused a plugin that gave no prices with `price show`'s hint, "or pass --prices
FILE", an option they do not take, while the controller's power loop said the same refusal without it. Now every
command that reads only factory.yaml's source says one sentence and one hint; `price show`, which takes --prices,
keeps its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import test_price_plugins
from test_power_review15 import EMPTY_PLUGIN
from test_price_plugins import factory_yaml

from factoryctl.config import load_config
from factoryctl.errors import ActionFailed
from factoryctl.power.configured_prices import configured_prices  # the power loop's

make_dist = test_price_plugins.make_dist  # the fixture that installs a distribution, shared by name
POLICY = "policy: tiers\ntiers:\n  - above_per_mwh: 10\n    cap_pct: 50\n"
HINT = "check the price feed and power.prices in factory.yaml."
SAID = "no price in price source `none` (package fcpl-none) for {}: it has no prices."


def _config(tmp_path: Path, make_dist: Any) -> Path:
    make_dist("fcpl-none", {"none": "fcpl_none:Source"}, {"fcpl_none": EMPTY_PLUGIN})
    (tmp_path / "policy.yaml").write_text(POLICY)
    return factory_yaml(tmp_path, "power:\n  price_source: none\n  policy: policy.yaml\n")


@pytest.mark.parametrize("verb", ["status", "plan"])
def test_the_policy_commands_refuse_an_empty_source_without_an_option_they_lack(cli, tmp_path, make_dist, verb):
    refused = cli("-c", str(_config(tmp_path, make_dist)), "power", verb)
    assert refused.exit_code == 1, refused.stderr
    assert refused.stdout == ""
    first, hint = refused.stderr.splitlines()
    assert first == "factoryctl: " + SAID.format(f"power {verb}")
    assert hint == f"hint: {HINT}"


def test_the_power_loop_refuses_it_in_the_same_words(tmp_path: Path, make_dist: Any) -> None:
    config = load_config(_config(tmp_path, make_dist))
    with pytest.raises(ActionFailed) as refused:
        configured_prices(config, "for the power loop")
    assert refused.value.message == SAID.format("the power loop")
    assert refused.value.hint == HINT


def test_the_price_now_of_sched_tick_reads_the_same_intervals(tmp_path: Path) -> None:
    """`price_now` reads the intervals `jobs show` and `power report` cost with; its answers are as before."""
    from factoryctl.jobs.price_now import price_now
    from factoryctl.power.configured_prices import price_intervals

    (tmp_path / "p.csv").write_text(
        "timestamp_utc,price_per_mwh\n2023-01-01T00:00:00Z,5\n2023-01-01T01:00:00Z,\n2023-01-01T02:00:00Z,7\n"
    )
    config = load_config(factory_yaml(tmp_path, "power:\n  price_source: csv\n  prices: p.csv\n"))
    start = 1672531200  # 2023-01-01T00:00:00Z
    hour = 3600
    assert price_intervals(config) == [
        (start, start + hour, 5.0),
        (start + hour, start + 2 * hour, None),
        (start + 2 * hour, start + 3 * hour, 7.0),
    ]
    label = "price source `csv` (package factoryctl)"
    assert price_now(config, start - 1) == (None, f"the prices of {label} start after now")
    assert price_now(config, start + 1800) == (5.0, None)
    assert price_now(config, start + hour) == (None, f"{label} has no price for the interval running now")
    assert price_now(config, start + 3 * hour - 1) == (7.0, None)
    assert price_now(config, start + 3 * hour) == (None, f"the prices of {label} end before now")
    assert price_now(load_config(factory_yaml(tmp_path, "")), start) == (None, None)  # no source: nothing held back
