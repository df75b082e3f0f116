"""`factoryctl init` and the "no factory.yaml" hint, as a newcomer meets them after a wheel install.

With $FACTORYCTL_CONFIG naming a missing file, every command hinted a bare `factoryctl init`, which wrote
./factory.yaml, where the variable does not look: now the hint names the file, as `config locate`'s does, and `init`
writes there by default. Under `umask 000` init wrote a 0666 file that every next command refused as writable by
others. The hints named docs/*.md paths that a wheel install does not have.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from factoryctl.errors import UsageError
from factoryctl.scheduler.trace import parse_trace


def hint_of(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if line.startswith("hint: "))


def test_a_missing_file_from_the_environment_is_the_one_init_writes(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = tmp_path / "conf" / "nope.yaml"
    monkeypatch.setenv("FACTORYCTL_CONFIG", str(wanted))
    monkeypatch.chdir(tmp_path)
    refused = cli("nodes")
    assert refused.exit_code == 3
    assert hint_of(refused.stderr) == f"hint: `factoryctl init {wanted}` writes an example there."
    assert hint_of(refused.stderr) == hint_of(cli("config", "locate").stderr)
    written = cli("init")
    assert written.exit_code == 0, written.stderr
    assert wanted.is_file()
    assert not (tmp_path / "factory.yaml").exists()
    assert written.stderr == f"wrote {wanted}; check it with `factoryctl config validate`\n"
    assert cli("config", "validate").exit_code == 0


def test_a_missing_file_from_the_option_gets_the_hint_config_locate_gives(cli: Any, tmp_path: Path) -> None:
    missing = tmp_path / "x.yaml"
    refused = cli("--config", str(missing), "gpus")
    assert refused.exit_code == 3
    assert hint_of(refused.stderr) == hint_of(cli("--config", str(missing), "config", "locate").stderr)


def test_with_no_file_anywhere_init_in_the_current_directory_is_the_hint(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    refused = cli("nodes")
    assert refused.exit_code == 3
    assert "`factoryctl init` to write an example in the current directory" in hint_of(refused.stderr)
    assert cli("init").exit_code == 0
    assert cli("config", "validate").exit_code == 0


@pytest.mark.parametrize("umask", [0o000, 0o002, 0o022, 0o077])
def test_init_writes_a_file_only_its_owner_may_write_whatever_the_umask(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: int
) -> None:
    monkeypatch.chdir(tmp_path)
    old = os.umask(umask)
    try:
        assert cli("init").exit_code == 0
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "factory.yaml").stat().st_mode)
    assert mode == 0o644 & ~umask
    validated = cli("config", "validate")
    assert validated.exit_code == 0, validated.stderr


def test_the_example_and_the_trace_hints_point_at_no_docs_path(cli: Any) -> None:
    example = cli("init", "-").stdout
    assert "docs/" not in example
    assert "`factoryctl config show` prints every key" in example.splitlines()[0]
    for trace in (["a;b\n"], [], ["job_id,submit_time_s,duration_s,num_gpus\n"]):
        with pytest.raises(UsageError) as caught:
            parse_trace(trace, source="t.csv")
        assert "docs/" not in (caught.value.hint or "")
        assert "job_id" in (caught.value.hint or "")
