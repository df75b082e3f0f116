"""Paths the system refuses for their length: a config error (exit 3) in one sentence, never "unexpected error".

A file name over 255 bytes or a path over 4096 fails every `stat()` with ENAMETOOLONG, which `Path.exists()`
raises: factory.yaml's own path and its state_dir are checked where they arrive, and the message keeps a huge
path short. Real files and the real store, through the in-process CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from factoryctl.config import parse_config
from factoryctl.store.connection import StoreConnection, StoreError
from factoryctl.telemetry.latest import read_live

NODES = "nodes:\n  n1: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 3}}\n"


def one_sentence_and_hint(stderr: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 2, stderr
    assert lines[0].startswith("factoryctl: ")
    assert lines[1].startswith("hint: ")
    assert len(stderr) < 400, stderr
    assert "unexpected error" not in stderr


@pytest.mark.parametrize("verb", ["validate", "locate", "show"])
def test_a_config_path_with_a_name_over_255_bytes_is_a_config_error(cli: Any, tmp_path: Path, verb: str) -> None:
    result = cli("--config", str(tmp_path / ("a" * 300 + ".yaml")), "config", verb)
    assert result.exit_code == 3, result.stderr
    one_sentence_and_hint(result.stderr)
    assert "the factory.yaml path (from --config) cannot be used: a name in it is 305 bytes long" in result.stderr


def factory_with_state_dir(tmp_path: Path, state_dir: str) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(f"name: lab\nstate_dir: {state_dir}\n{NODES}")
    return path


@pytest.mark.parametrize(
    "args",
    [
        ("nodes", "-o", "json"),
        ("events", "-o", "json"),
        ("controller", "status", "-o", "json"),
        ("gpus", "-o", "json"),
        ("audit",),
        ("telemetry", "collect", "--once"),
    ],
)
@pytest.mark.parametrize("state_dir", ["a" * 300, "/".join(["b" * 200] * 25)], ids=["name_300", "path_5000"])
def test_a_state_dir_too_long_is_a_config_error(
    cli: Any, tmp_path: Path, args: tuple[str, ...], state_dir: str
) -> None:
    factory = factory_with_state_dir(tmp_path, str(tmp_path / state_dir))
    result = cli("--config", str(factory), *args)
    assert result.exit_code == 3, result.stderr
    one_sentence_and_hint(result.stderr)
    assert f"factoryctl: {factory}:2:12: state_dir cannot be used: " in result.stderr
    assert "..." in result.stderr  # the path is shortened to its start and end


def state_dir_of(tmp_path: Path, size: int) -> str:
    """An absolute path of `size` bytes under `tmp_path`, its names 200 bytes or less."""
    path = (f"{tmp_path}/" + "/".join(["c" * 200] * 3))[:size]
    assert len(path) == size
    assert not path.endswith("/")
    return path


def test_the_longest_state_dir_sqlite_can_use_works_and_one_byte_more_is_refused(cli: Any, tmp_path: Path) -> None:
    factory = factory_with_state_dir(tmp_path, state_dir_of(tmp_path, 489))
    result = cli("--config", str(factory), "telemetry", "collect", "--once", "-o", "json")
    assert result.exit_code == 0, result.stderr
    factory = factory_with_state_dir(tmp_path, state_dir_of(tmp_path, 490))
    result = cli("--config", str(factory), "telemetry", "collect", "--once", "-o", "json")
    assert result.exit_code == 3, result.stderr
    assert "state_dir cannot be used: it is 490 bytes long, over the 489 it may have" in result.stderr


def test_the_store_and_the_live_reader_refuse_such_a_path_in_sentences(tmp_path: Path) -> None:
    """Below the CLI's check (a caller passing state_dir itself): a StoreError, and no live store, not an OSError."""
    config = parse_config(f"name: lab\n{NODES}", tmp_path / "factory.yaml", state_dir=tmp_path / ("d" * 300))
    assert read_live(config) is None
    with pytest.raises(StoreError, match="cannot open the store at"):
        StoreConnection(config.store_path, readonly=True)


def test_a_long_default_state_dir_only_fails_what_needs_the_store(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No state_dir written: XDG_STATE_HOME's dir over SQLite's limit leaves `exec` and `config validate` working."""
    factory = tmp_path / "factory.yaml"
    factory.write_text(f"name: lab\n{NODES}")
    monkeypatch.setenv("XDG_STATE_HOME", state_dir_of(tmp_path, 495))  # within the system's limits, over SQLite's
    assert cli("--config", str(factory), "config", "validate").exit_code == 0
    assert cli("--config", str(factory), "exec", "n1", "--", "true").exit_code == 0
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / ("x" * 300)))  # a name the system cannot look up
    result = cli("--config", str(factory), "nodes", "-o", "json")
    assert result.exit_code == 3, result.stderr
    one_sentence_and_hint(result.stderr)
    assert "the default state directory cannot be used: a name in it is 300 bytes long" in result.stderr
    assert "XDG_STATE_HOME" in result.stderr


def test_init_with_a_path_too_long_is_a_config_error(cli: Any, tmp_path: Path) -> None:
    result = cli("init", str(tmp_path / ("a" * 300 + ".yaml")))
    assert result.exit_code == 3, result.stderr
    one_sentence_and_hint(result.stderr)
    assert "the factory.yaml path cannot be used: a name in it is 305 bytes long" in result.stderr


def test_a_store_path_over_sqlites_limit_says_so(tmp_path: Path) -> None:
    """A default state dir (XDG_STATE_HOME) long enough: "check that it exists" sent users to a directory that did."""
    deep = Path(state_dir_of(tmp_path, 495))
    deep.mkdir(parents=True)
    with pytest.raises(StoreError, match=r"its path is 506 bytes long, and SQLite opens no file whose path is 505"):
        StoreConnection(deep / "factory.db")
