"""Write the dashboard screenshots of docs/dashboard.md (SVG, exported by Textual) from the fixed sample factory.

    python tests/tui/screenshots.py docs/img

Not a test: the same pictures are checked by the snapshot tests; this only exports them at documentation sizes.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from factory_data import T0, FrozenServices

from factoryctl.tui.app import make_app
from factoryctl.tui.screens.node import NodeScreen


async def _settle(pilot, condition) -> None:
    for _ in range(500):
        if condition():
            break
        await pilot.pause(0.01)
    await pilot.pause()


async def export(target: Path) -> None:
    """Main screen, node screen and the power-cap dialog."""
    app = make_app(FrozenServices(), clock=lambda: T0 + 1)
    async with app.run_test(size=(160, 40)) as pilot:
        await _settle(pilot, lambda: app.snapshots_taken >= 1)
        app.save_screenshot(str(target / "dashboard-main.svg"))
        await pilot.press(*["down"] * 6, "enter", "down", "down")
        await _settle(pilot, lambda: isinstance(app.screen, NodeScreen) and app.screen.history is not None)
        app.save_screenshot(str(target / "dashboard-node.svg"))
        await pilot.press("p", *"450")
        await pilot.pause()
        app.save_screenshot(str(target / "dashboard-power-cap.svg"))


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img")
    out.mkdir(parents=True, exist_ok=True)
    asyncio.run(export(out))
    print(f"wrote {out}/dashboard-main.svg, dashboard-node.svg, dashboard-power-cap.svg")
