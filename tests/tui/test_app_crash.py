"""An unexpected error inside the dashboard reaches the CLI's boundary instead of Textual's report.

Textual prints a traceback with every frame's local variables after a crash; factoryctl never prints local variables
(they may hold a config or a key's path), and says one sentence unless --debug asks for the traceback.
"""

from __future__ import annotations

import pytest
from factory_data import FrozenServices
from pilot_helpers import first_snapshot

from factoryctl.tui.app import make_app


def _fail() -> None:
    raise ZeroDivisionError("a bug in a handler")


async def test_a_crash_is_kept_for_the_cli_and_textual_prints_nothing(
    services: FrozenServices, capfd: pytest.CaptureFixture[str]
) -> None:
    app = make_app(services)

    async def crash_it() -> None:
        async with app.run_test() as pilot:
            await first_snapshot(pilot)
            app.call_later(_fail)
            await pilot.pause()
            await pilot.pause()

    with pytest.raises(ZeroDivisionError):  # run_test raises what crashed the app, as run_dashboard does
        await crash_it()
    assert isinstance(app.crashed, ZeroDivisionError)
    assert app.return_code == 1
    printed = capfd.readouterr()
    assert "Traceback" not in printed.err + printed.out  # Textual's report (with local variables) was never printed
    assert "a bug in a handler" not in printed.err + printed.out
