"""Commands that print a document, not a listing, offer only the `-o` forms they accept (no csv) in help and TAB."""

from __future__ import annotations

import pytest

from factoryctl.cli.options import DOCUMENT_FORMATS

DOCUMENT_COMMANDS = [
    ("nodes", "trust"),
    ("nodes", "check"),
    ("config", "show"),
    ("controller", "status"),
    ("power", "simulate"),
]


@pytest.mark.parametrize("command", DOCUMENT_COMMANDS, ids=" ".join)
def test_help_offers_no_csv_where_csv_is_refused(cli, command):
    help_text = cli(*command, "--help").stdout
    assert "<table|wide|json|yaml>" in help_text
    assert "csv" not in help_text
    refused = cli(*command, "-o", "csv")
    assert refused.exit_code == 2


def test_trust_and_check_no_header_speaks_of_their_table_only(cli):
    for command in DOCUMENT_COMMANDS[:2]:
        assert "Omit the table header." in " ".join(cli(*command, "--help").stdout.split())


def test_completion_of_a_document_output_offers_no_csv():
    from typer.main import get_command

    from factoryctl.cli.app import app

    command = get_command(app)
    ctx = command.make_context("factoryctl", ["nodes", "trust"], resilient_parsing=True)
    trust = command.get_command(ctx, "nodes").get_command(ctx, "trust")  # type: ignore[attr-defined]
    option = next(p for p in trust.params if "--output" in p.opts)
    assert [c.value for c in option.shell_complete(ctx, "")] == list(DOCUMENT_FORMATS)
