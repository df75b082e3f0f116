"""A node action that fails with something other than a `FactoryError` is reported, never swallowed.

The action workers run with `exit_on_error=False`, so an exception they do not catch would end the action silently:
the operator would see nothing happen.
"""

from __future__ import annotations

from typing import Any

from factory_data import FrozenServices
from pilot_helpers import RecordingApp, confirm_by_keys, first_snapshot, last_notice, wait_until

from factoryctl.tui.screens.main import MainScreen


class BuggyServices(FrozenServices):
    """Services whose actions hit a bug (not a `FactoryError`) after being called."""

    def drain(self, node: str, reason: str) -> None:
        super().drain(node, reason)
        raise KeyError("rack")

    def set_power_cap(self, node: str, watts: float, gpus: list[int] | None = None) -> list[dict[str, Any]]:
        super().set_power_cap(node, watts, gpus)
        raise ZeroDivisionError("division by zero")


async def test_an_unexpected_error_in_a_drain_is_notified_and_the_app_lives() -> None:
    services = BuggyServices()
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("d", *"bad fan")
        await confirm_by_keys(pilot)
        await wait_until(pilot, lambda: app.notified, what="the failure toast")
        toast = app.notified[-1]
        assert toast.message.startswith("unexpected error: KeyError: 'rack'")
        assert toast.severity == "error"
        assert services.calls == [("drain", "demo01", "bad fan")]
        assert isinstance(app.screen, MainScreen)


async def test_an_unexpected_error_in_a_power_cap_is_notified() -> None:
    services = BuggyServices()
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("p", *"450")
        await confirm_by_keys(pilot)
        await wait_until(pilot, lambda: app.notified, what="the failure toast")
        assert last_notice(app).startswith("unexpected error: ZeroDivisionError: division by zero")
        assert services.calls == [("set_power_cap", "demo01", 450.0)]
