"""docs/ssh.md's table of hints is the one table's text (factoryctl/transport/hints.py), word for word."""

from __future__ import annotations

from pathlib import Path

from factoryctl.transport import hints

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ssh.md"


def test_every_hint_docs_ssh_md_lists_is_the_one_the_table_gives() -> None:
    rows = [line for line in DOCS.read_text().splitlines() if line.startswith("| `") and line.count("|") == 3]
    documented = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in rows}
    given = {
        "`dns`": hints.node_error_hint("NODE", "dns", "cannot resolve h: Name or service not known"),
        "`refused` (the port refused)": hints.node_error_hint("NODE", "refused", "10.0.0.7:22 refused the connection"),
        "`timeout` (TCP connect)": hints.node_error_hint(
            "NODE", "timeout", "no answer from 10.0.0.7:22 within 10 s (ssh.connect_timeout_s)"
        ),
        "`timeout` (the agent started but did not answer)": hints.node_error_hint(
            "NODE", "timeout", "the agent did not say hello within 15 s."
        ),
        "`driver` (no usable Python, and nvidia-smi failed too)": hints.node_error_hint(
            "NODE", "driver", "no usable python3 for the agent (not found), and nvidia-smi failed: not found"
        ),
    }
    assert {failure: documented.get(failure) for failure in given} == given
