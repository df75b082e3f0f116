"""The quick start's "Every day" steps run again as written: its fault injection is cleared at its end.

Its last step left GPU 2 of `ws` lost for good (the simulated state outlives the shell and the virtualenv), so
trying the steps a second time stopped at `power set @local` with exit 1. The block now ends with
`sim inject ws --reset`.
"""

from __future__ import annotations

from typing import Any

from test_docs import quickstart_commands


def test_the_every_day_steps_run_twice_as_written(cli: Any) -> None:
    assert cli("init").exit_code == 0
    commands = [argv for argv in quickstart_commands("3. Every day") if "--watch" not in argv]  # redraws until Ctrl-C
    assert any(argv[:2] == ["sim", "inject"] for argv in commands)
    for attempt in (1, 2):
        for argv in commands:
            result = cli(*argv)
            assert result.exit_code == 0, (attempt, argv, result.stderr)
