"""`controller status` with no controller running says so in a sentence before its hint, as every failure does.

It printed only `hint: start it with ...` on stderr (exit 1): a hint under no sentence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SAID = [
    "factoryctl: no controller is running on this store.",
    "hint: start it with `factoryctl controller run`: it runs in the foreground until SIGTERM, so keep it under a"
    " service manager (systemd: `ExecStart=/path/to/factoryctl --config FILE controller run`).",
]


@pytest.mark.parametrize("options", [[], ["-o", "json"]], ids=["table", "json"])
def test_no_controller_is_a_sentence_and_a_hint(cli: Any, tmp_path: Path, options: list[str]) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(f"name: t\nstate_dir: {tmp_path / 'state'}\nnodes:\n  n1: {{transport: local}}\n")
    result = cli("-q", "--config", str(config), "controller", "status", *options)
    assert (result.exit_code, result.stderr.splitlines()) == (1, SAID)
    if options:
        assert result.json()["running"] is False  # type: ignore[index]
    else:
        assert result.stdout.startswith("controller: not running\n")
