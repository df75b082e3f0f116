"""Help texts name their arguments alike: `[target]`, lower case, as every command writes it."""

from __future__ import annotations


def test_dash_writes_its_target_like_every_other_command(cli):
    shown = cli("dash", "--help").stdout
    assert "Usage: factoryctl dash [OPTIONS] [target]" in shown
    assert "TARGET" not in shown


def test_nodes_help_says_where_the_listing_options_are(cli):
    """`nodes --help` showed only -o and --no-header, though `nodes gpu01 --timeout 3` and `--watch` work."""
    shown = " ".join(cli("nodes", "--help").stdout.split())
    assert "is `factoryctl nodes list [TARGET]`: its --watch, --interval and --timeout are in" in shown
    assert "--timeout" in cli("nodes", "list", "--help").stdout


def test_checked_seconds_options_show_their_range(cli):
    assert "(0.1-86400)" in " ".join(cli("metrics", "serve", "--help").stdout.split())
    assert "Seconds between samples (0.1-86400)" in " ".join(cli("demo", "--help").stdout.split())
