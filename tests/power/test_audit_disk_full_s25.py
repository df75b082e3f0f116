"""A store that refuses the answers once nodes changed (a disk full mid-command): what changed is still said.

`power set all --watts 328` on a store whose disk filled while the nodes changed printed one sentence (`the power
limits of 28 GPUs were changed, but the audit log could not record it: ... was not saved.; each GPU's request ...`),
nothing on stdout, and neither the nodes that failed nor which GPUs changed to what: `trail.finish()` raised, and
what the nodes did was thrown away. Now the listing and the nodes' errors come first, as for any partial outcome,
then the audit failure (one sentence), with the partial outcome's exit status. The next command's note said the
command `ended before it heard back`, untrue of one that heard back and could not record it; a warning of requests
left `unknown` had no `factoryctl:` prefix, and said `nodes never asked` of nodes that had been asked.

The store is a real SQLite file; it refuses writes from the moment the first node is asked (`PRAGMA query_only` on
the command's own connection: SQLite's own refusal, as a full disk's is), on real agents over the local transport.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from factoryctl.power.limit_audit import RequestTrail, abandoned_note
from factoryctl.store.audit_runs import Abandoned
from factoryctl.store.rows import UNKNOWN


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    """`n1` (4 simulated H100s at 700 W) and `down` (nothing listens at its port), the store under tmp_path."""
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  n1: {transport: local, sim: {profile: h100-sxm, gpus: 4, seed: 3}}\n"
        "  down: {host: 127.0.0.1, port: 1}\n"
    )
    return path


@pytest.fixture
def store_refuses_once_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """From the first node asked on, the command's store refuses every write (its requests are in already)."""
    asking = RequestTrail.asking

    def refusing(self: RequestTrail, node: str) -> None:
        db: sqlite3.Connection = self._store._db
        db.execute("PRAGMA query_only = 1")
        asking(self, node)

    monkeypatch.setattr(RequestTrail, "asking", refusing)


def _audit(factory: Path) -> list[tuple[Any, ...]]:
    from factoryctl.config import load_config
    from factoryctl.store import open_store

    store = open_store(load_config(factory).store_path)
    try:
        return [(e.node, e.gpu, e.outcome) for e in store.audit(0.0)]
    finally:
        store.close()


def test_changes_the_store_refused_are_listed_with_the_failed_nodes_then_the_audit_failure(
    cli: Any, factory: Path, store_refuses_once_asked: None
) -> None:
    result = cli("--config", str(factory), "power", "set", "all", "--watts", "400")
    assert result.exit_code == 4, result.stderr  # the partial outcome's: `down` refused the connection
    assert result.stdout.splitlines()[1].split() == ["n1", "0-3", "700", "400", "no"]
    lines = result.stderr.splitlines()
    assert any(line.startswith("factoryctl: down: ") for line in lines), result.stderr
    said, hint = lines[-2:]
    assert said.startswith("factoryctl: the power limits of 4 GPUs were changed, but the audit log could not record ")
    assert said.endswith("; their nodes' requests stay in the audit log instead, outcome `unknown`.")
    assert ".;" not in said
    assert hint.startswith("hint: the listing above is the only record of what changed")
    assert _audit(factory) == [("n1", None, UNKNOWN)]  # the request, as the sentence says


def test_alone_the_audit_failure_is_exit_1(cli: Any, factory: Path, store_refuses_once_asked: None) -> None:
    result = cli("--config", str(factory), "power", "set", "n1/0-1", "--watts", "400", "-o", "json")
    assert result.exit_code == 1, result.stderr
    assert '"enforced_w": 400.0' in result.stdout
    assert result.stderr.startswith("factoryctl: the power limits of 2 GPUs were changed, but the audit log could")
    assert _audit(factory) == [("n1", 0, UNKNOWN), ("n1", 1, UNKNOWN)]


def test_requests_of_nodes_asked_that_changed_nothing_are_warned_of_with_the_prefix(
    cli: Any, factory: Path, store_refuses_once_asked: None
) -> None:
    """A reset of GPUs at their default changes nothing: the store then would not drop the request, said so."""
    result = cli("--config", str(factory), "-q", "power", "reset", "n1")
    assert result.exit_code == 0, result.stderr
    [warning] = result.stderr.splitlines()  # under -q too
    assert warning.startswith(
        "factoryctl: warning: 1 request of nodes that changed nothing stays in the audit log as `unknown` (no limit "
        "changed there): "
    )
    assert "never asked" not in warning


def test_the_abandoned_note_is_true_of_a_command_that_heard_back_and_could_not_record() -> None:
    note = abandoned_note(Abandoned(5088, ["n08"], 1))
    assert note.startswith(
        "1 audit entry of n08 was left `unknown` by a command that ended without recording an answer (pid 5088): "
        "now `abandoned`; "
    )
