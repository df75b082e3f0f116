"""Help texts name their arguments alike: `[target]`, lower case, as every command writes it."""

from __future__ import annotations


def test_dash_writes_its_target_like_every_other_command(cli):
    shown = cli("dash", "--help").stdout
    assert "Usage: factoryctl dash [OPTIONS] [target]" in shown
    assert "TARGET" not in shown
