"""A cache the agent zipapp cannot be written to: it is built in a private temporary directory, or one sentence says so.

The reviewer's case: the systemd unit of docs/controller.md made root's home read-only (`ProtectHome=read-only`), so
after an upgrade changed the agent's hash every node failed with `OSError: [Errno 30] Read-only file system:
'.../factoryctl-agent-<hash>.pyz.<x>.tmp'` (hint "rerun with --debug"), recorded as every node's node_down. The
temporary directory stood in only for a cache that was not private, not for one that could not be written.

A read-only mount needs privileges a CI runner may lack, and root writes through any mode, so the failures here are
ones root meets too: the cache's parent is a regular file (mkdir: ENOTDIR), the zipapp's name is taken by a
directory (the rename: EISDIR), and the temporary directory is a regular file (mkdtemp: ENOTDIR). A real command
runs on a real local simulated node each time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from factoryctl.transport import bundle

FACTORY = "name: lab\nstate_dir: {state}\nnodes:\n  ws: {{transport: local, sim: {{profile: h100-sxm, gpus: 2}}}}\n"


@pytest.fixture(autouse=True)
def fresh_bundle_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """No fallback directory, cache verdict or checked zipapp left over from another test of this process."""
    monkeypatch.setattr(bundle, "_FALLBACK", [])
    monkeypatch.setattr(bundle, "_UNWRITABLE", {})
    monkeypatch.setattr(bundle, "_VERIFIED", {})


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(FACTORY.format(state=tmp_path / "state"))
    return path


def _zipapp_name() -> str:
    return f"factoryctl-agent-{bundle.bundle_hash()}.pyz"


def _gpus_of_ws(cli: Any, config: Path) -> Any:
    return cli("--config", str(config), "gpus", "ws")


def test_a_cache_whose_parent_is_a_file_is_replaced_by_a_temporary_directory(
    cli: Any, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cache"))
    result = _gpus_of_ws(cli, config)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("NVIDIA H100") == 2
    assert result.stderr == ""
    warning = caplog.text  # the warning (stderr, when no test captures the log)
    assert f"the agent cache {blocker / 'cache' / 'factoryctl'} cannot be written (Not a directory)" in warning
    assert "another user could replace" not in warning  # nothing about privacy: it could not be made at all
    assert "set XDG_CACHE_HOME" in warning
    assert "Errno" not in warning


def test_a_cache_the_zipapp_cannot_be_written_into_is_replaced_by_a_temporary_directory(
    cli: Any, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = tmp_path / "xdg" / "factoryctl"
    cache.mkdir(parents=True, mode=0o700)
    (cache / _zipapp_name() / "in-the-way").mkdir(parents=True)  # the rename into place fails: EISDIR
    first = _gpus_of_ws(cli, config)
    assert first.exit_code == 0, first.stderr
    assert first.stdout.count("NVIDIA H100") == 2
    assert first.stderr == ""
    assert f"the agent cache {cache} cannot be written (Is a directory)" in caplog.text
    [fallback] = bundle._FALLBACK
    assert f"it is built in {fallback.shown} for this run instead" in caplog.text
    used = bundle.agent_zipapp()
    assert used.parent == fallback.via  # the held directory, reached through its descriptor
    assert bundle.shown_path(used) == fallback.shown / used.name
    assert used.is_file()
    assert not list(cache.glob("*.tmp"))  # the failed write left nothing behind
    caplog.clear()
    again = _gpus_of_ws(cli, config)  # the same process: the temporary directory's zipapp is used again
    assert (again.exit_code, again.stderr) == (0, ""), again.stderr
    assert caplog.text == ""  # warned once


def test_with_no_writable_directory_each_node_fails_with_one_sentence_and_a_hint(
    cli: Any, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = tmp_path / "xdg" / "factoryctl"
    cache.mkdir(parents=True, mode=0o700)
    (cache / _zipapp_name() / "in-the-way").mkdir(parents=True)
    no_tmp = tmp_path / "tmp-is-a-file"
    no_tmp.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(no_tmp))  # as TMPDIR pointing at it would, once chosen
    result = _gpus_of_ws(cli, config)
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"factoryctl: ws: the agent was not built: its cache {cache} cannot be written (Is a directory), and no "
        f"temporary directory could be made in {no_tmp} (Not a directory)."
    ), lines
    assert lines[1].startswith("hint: set XDG_CACHE_HOME to a directory this user can write"), lines
    assert len(lines) == 2, lines
