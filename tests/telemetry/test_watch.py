"""`--watch` ends with Ctrl-C, and Ctrl-C is 130 there as everywhere else (docs/cli.md, Exit codes)."""

from __future__ import annotations

from typing import Any

import pytest
from main_thread_sleep import patch_main_thread_sleep

from factoryctl.cli.listing import show_listing
from factoryctl.cli.render import Column, OutputFormat
from factoryctl.errors import ExitCode, NodeError


def test_ctrl_c_during_watch_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    shown: list[int] = []

    def produce() -> tuple[list[dict[str, Any]], list[NodeError]]:
        shown.append(1)
        return [{"node": "n1"}], [NodeError("n2", "refused", "n2: refused")]

    def interrupt_second(seconds: float) -> None:
        if len(shown) == 2:
            raise KeyboardInterrupt

    patch_main_thread_sleep(monkeypatch, interrupt_second)
    code = show_listing(produce, (Column("node", "NODE"),), OutputFormat.table, False, watch=True, interval=0.1)
    assert code == ExitCode.INTERRUPTED == 130
    assert len(shown) == 2
    assert "n2: refused" in capsys.readouterr().err
