r"""Command-line text that is not UTF-8 (`-r $'x\xff'`) is a usage error before anything changes; paths keep bytes.

Python hands such bytes over as lone surrogates (`surrogateescape`); SQLite refused them only after the power limit
had changed, so the change went unaudited. Real agents on the simulated driver (local transport), the real store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

#: `$'x\xff'` as Python's argv holds it.
BAD = "x\udcff"


@pytest.fixture
def factory(tmp_path: Path, cli: Any) -> Path:
    """One local simulated node, and its store already made (one telemetry sweep), so `audit` can read it."""
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\n"
        "nodes:\n  n1: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 3}}\n"
    )
    swept = cli("--config", str(path), "telemetry", "collect", "--once", "-o", "json")
    assert swept.exit_code == 0, swept.stderr
    return path


def limit_of_gpu0(cli: Any, factory: Path) -> float:
    result = cli("--config", str(factory), "gpus", "n1/0", "-o", "json")
    assert result.exit_code == 0, result.stderr
    return float(result.json()["items"][0]["power_limit_w"])


def audit_rows(cli: Any, factory: Path) -> list[dict[str, Any]]:
    result = cli("--config", str(factory), "audit", "--since", "1h", "-o", "json")
    assert result.exit_code == 0, result.stderr
    return list(result.json()["items"])


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("power", "set", "n1/0", "--watts", "350", "-r", BAD), "x\\xff"),
        (("power", "reset", "n1/0", "--reason", "\udcff"), "\\xff"),
    ],
)
def test_a_reason_that_is_not_utf8_changes_no_limit(cli: Any, factory: Path, args: tuple[str, ...], shown: str) -> None:
    before = limit_of_gpu0(cli, factory)
    result = cli("--config", str(factory), *args)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith(f"factoryctl: --reason must be UTF-8 text, and '{shown}' is not.\nhint: ")
    assert result.stdout == ""
    assert limit_of_gpu0(cli, factory) == before
    assert audit_rows(cli, factory) == []


def test_a_drain_reason_that_is_not_utf8_drains_nothing(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "nodes", "drain", "n1", "-r", "\udcffz")
    assert result.exit_code == 2, result.stderr
    assert "--reason must be UTF-8 text" in result.stderr
    listing = cli("--config", str(factory), "nodes", "list", "-o", "json")
    assert [n["drained"] for n in listing.json()["items"]] == [False]


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("events", "--kind", "\udcff"), "--kind"),
        (("telemetry", "history", "n1", "-m", "\udcff"), "--metric"),
        (("gpus", "n1\udcff"), "TARGET"),
        (("\udcff",), "the command name"),
    ],
)
def test_every_text_option_and_argument_is_checked(cli: Any, factory: Path, args: tuple[str, ...], name: str) -> None:
    result = cli("--config", str(factory), *args)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith(f"factoryctl: {name} must be UTF-8 text, and '"), result.stderr
    assert "\\udcff" not in result.stderr


def test_a_path_keeps_its_bytes(cli: Any, factory: Path, tmp_path: Path) -> None:
    latin1 = tmp_path / "caf\udce9.yaml"  # `café.yaml` written in Latin-1: a legitimate Linux file name
    latin1.write_bytes(factory.read_bytes())
    result = cli("--config", str(latin1), "config", "validate")
    assert result.exit_code == 0, result.stderr


def test_a_long_value_is_quoted_short(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "events", "--kind", "k" * 5000 + "\udcff")
    assert result.exit_code == 2
    assert len(result.stderr) < 400, result.stderr


def test_a_reason_over_1000_characters_is_refused(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "power", "set", "n1/0", "--watts", "350", "-r", "a" * 1001)
    assert result.exit_code == 2, result.stderr
    assert "--reason is 1001 characters long, over the 1000 a record takes: nothing was done." in result.stderr
    drain = cli("--config", str(factory), "nodes", "drain", "n1", "-r", "a" * 100_000)
    assert drain.exit_code == 2, drain.stderr
    assert audit_rows(cli, factory) == []
    kept = cli("--config", str(factory), "power", "set", "n1/0", "--watts", "350", "-r", f" {'a' * 1000} ")
    assert kept.exit_code == 0, kept.stderr
    assert [r["reason"] for r in audit_rows(cli, factory)] == ["a" * 1000]


def test_a_login_name_that_is_not_utf8_is_still_audited(
    cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGNAME", "ops\udcff")  # the store's other way in: the environment, not argv
    result = cli("--config", str(factory), "power", "set", "n1/0", "--watts", "350")
    assert result.exit_code == 0, result.stderr
    assert [r["user"] for r in audit_rows(cli, factory)] == ["ops\\xff"]


def test_a_login_name_that_is_not_utf8_still_drains(cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "ops\udcff")
    result = cli("--config", str(factory), "nodes", "drain", "n1", "-r", "disk")
    assert result.exit_code == 0, result.stderr
    listing = cli("--config", str(factory), "nodes", "list", "-o", "json")
    assert [(n["drained"], n["drained_by"]) for n in listing.json()["items"]] == [(True, "ops\\xff")]


def test_init_names_a_latin1_path_so_that_the_command_it_suggests_opens_it(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said `wrote j?.yaml; check it with --config 'j?.yaml'`: a different file."""
    monkeypatch.chdir(tmp_path)
    result = cli("init", "j\udce9.yaml")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "j\udce9.yaml").exists()
    assert result.stderr == "wrote j\\xe9.yaml; check it with `factoryctl --config $'j\\xe9.yaml' config validate`\n"
