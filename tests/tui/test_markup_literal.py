"""Text from a node, the config or the operator is drawn as written, never read as Textual markup.

Textual reads a notification's message (and a label's, a border title's) as markup unless told otherwise: a drain
reason or an agent's error holding `[/]` ended the dashboard (`MarkupError: auto closing tag ('[/]') has nothing to
close`), and `[@click=app.quit]word[/]` planted a clickable action in the toast (a click quit the app). Textual's
`run_test()` draws no toast unless asked, which is how this went unseen: these tests ask (`notifications=True`), so
every toast is rendered as in a terminal and read back from the screen.

The services are real (a local node on the simulated driver; an agent that refuses a cap is a script on the real
local transport, as in test_dash_error_samples.py), except for the failed-snapshot test, whose failure no real
source can be made to say on demand.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from factory_data import FrozenServices
from pilot_helpers import RecordingApp, confirm_by_keys, first_snapshot, screen_text, wait_until
from waiting import wait_for

import factoryctl.tui
from factoryctl.config import parse_config
from factoryctl.errors import FactoryError
from factoryctl.live.services import FactorySnapshot
from factoryctl.live.services_polled import PolledServices

#: Markup that crashes Textual (nothing to close), and markup that plants an action (quit) in what it is shown in.
HOSTILE = ["fan [/] broken", "[@click=app.quit]x[/]"]

#: An agent whose node is up (one GPU that takes caps from 100 to 700 W) and whose driver refuses every cap,
#: saying `{message}` word for word.
REFUSING_AGENT = """\
#!{python}
import json, sys, threading, time
lock = threading.Lock()
GPU = {{"index": 0, "uuid": "GPU-0", "name": "NVIDIA H100", "power_w": 300.0, "power_limit_w": 700.0,
        "power_limit_min_w": 100.0, "power_limit_max_w": 700.0}}
def send(message):
    with lock:
        sys.stdout.write(json.dumps(message) + "\\n")
        sys.stdout.flush()
def stream(rid, interval):
    while True:
        send({{"id": rid, "type": "sample", "result": {{"time": time.time(), "backend": "sim", "gpus": [GPU]}}}})
        time.sleep(interval)
send({{"type": "hello", "agent_version": "scripted", "protocol": 1, "backend": "sim"}})
for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "stream":
        send({{"id": request["id"], "ok": True, "result": {{"streaming": True}}}})
        threading.Thread(target=stream, args=(request["id"], request["interval_s"]), daemon=True).start()
    elif request["op"] == "set_power_limit":
        send({{"id": request["id"], "ok": False, "error": {{"kind": "driver", "message": {message!r}}}}})
    elif request["op"] == "shutdown":
        send({{"id": request["id"], "ok": True, "result": {{"bye": True}}}})
        break
    else:
        send({{"id": request["id"], "ok": True, "result": {{}}}})
"""


def polled(tmp_path: Path, node_entry: str) -> PolledServices:
    """The dashboard's own collector on one node `n1`, its first sample in (no store: drains stay in memory)."""
    yaml = f"name: s\ncontroller: {{interval_s: 0.5}}\nnodes:\n  n1: {node_entry}\n"
    services = PolledServices(parse_config(yaml, tmp_path / "factory.yaml", tmp_path / "state"), use_store=False)
    try:
        wait_for(lambda: services.snapshot().nodes[0].state == "up", 30.0, "n1 up")
    except BaseException:
        services.close()
        raise
    return services


@pytest.fixture
def simulated(tmp_path: Path) -> Iterator[PolledServices]:
    services = polled(tmp_path, "{transport: local, sim: h100-sxm, gpus: 1}")
    yield services
    services.close()


def refusing(tmp_path: Path, message: str) -> PolledServices:
    """Services on `n1`, whose agent refuses every cap with `message`."""
    python = tmp_path / "refusing-python"
    python.write_text(REFUSING_AGENT.format(python=sys.executable, message=message))
    python.chmod(0o755)
    return polled(tmp_path, f"{{transport: local, python: {python}}}")


async def shown_as_written(pilot, app: RecordingApp, words: str) -> None:
    """Once drawn (a toast comes in the frames after its notification), the screen shows `words` as written.

    Read as markup, `[/]` ended the app as it drew them, and `[@click=app.quit]x[/]` showed as a clickable `x`.
    """
    for _ in range(50):
        await pilot.pause(0.05)
        assert app.crashed is None, f"the dashboard crashed drawing {words!r}: {app.crashed!r}"
        assert app.is_running, f"the dashboard ended drawing {words!r}"
        if words in screen_text(app):
            return
    raise AssertionError(f"{words!r} is not on the screen:\n{screen_text(app)}")


@pytest.mark.parametrize("reason", HOSTILE)
async def test_a_typed_drain_reason_is_notified_as_typed(simulated: PolledServices, reason: str) -> None:
    app = RecordingApp(simulated)
    async with app.run_test(notifications=True, size=(120, 30)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("d", *reason)
        await confirm_by_keys(pilot)
        said = f"n1 drained: {reason}"
        await wait_until(pilot, lambda: any(n.message == said for n in app.notified), 10.0, "the drain's toast")
        await shown_as_written(pilot, app, said)
        assert simulated.snapshot().drained == frozenset({"n1"})


async def test_a_click_on_a_toast_runs_no_action_its_text_spells(simulated: PolledServices) -> None:
    """Read as markup, `n1 drained: [@click=app.quit]x[/]` drew `n1 drained: x`, and a click on that `x` quit."""
    app = RecordingApp(simulated)
    async with app.run_test(notifications=True, size=(120, 30)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("d", *"[@click=app.quit]x[/]")
        await confirm_by_keys(pilot)
        await wait_until(pilot, lambda: app.screen.query("Toast"), 10.0, "the drain's toast drawn")
        for _ in range(5):  # laid out
            await pilot.pause(0.05)
        area = app.screen.query("Toast").last().content_region
        await pilot.click(offset=(area.x + len("n1 drained: "), area.y))  # where the action's `x` was drawn
        for _ in range(5):
            await pilot.pause(0.05)
        assert app.is_running
        assert app.return_code is None


@pytest.mark.parametrize("message", ["the driver said [/] no", "[@click=app.quit]details[/]"])
async def test_an_agents_error_is_notified_as_the_agent_said_it(tmp_path: Path, message: str) -> None:
    services = refusing(tmp_path, message)
    try:
        app = RecordingApp(services)
        async with app.run_test(notifications=True, size=(120, 30)) as pilot:
            await first_snapshot(pilot)
            await pilot.press("p", *"450")
            await confirm_by_keys(pilot)
            await wait_until(pilot, lambda: any(n.severity == "error" for n in app.notified), 10.0, "the error toast")
            notice = app.notified[-1]
            assert notice.message.startswith(f"n1: {message}")
            await shown_as_written(pilot, app, f"n1: {message}")
    finally:
        services.close()


class FailingServices(FrozenServices):
    """Services whose snapshots fail, with a message naming what the operator configured (a path, a plugin)."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def snapshot(self) -> FactorySnapshot:
        self.snapshots_served += 1
        raise FactoryError(self.message)


@pytest.mark.parametrize("words", HOSTILE)
async def test_a_failed_snapshot_is_notified_as_said(words: str) -> None:
    said = f"cannot read /srv/{words}/factory.db"
    app = RecordingApp(FailingServices(said))
    async with app.run_test(notifications=True, size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: app.notified, what="the failure's toast")
        notice = app.notified[-1]
        assert (notice.title, notice.message) == ("no new data", said)
        await shown_as_written(pilot, app, said)


@pytest.mark.parametrize("typed", HOSTILE)
async def test_a_typed_filter_is_shown_as_typed_under_the_table(typed: str) -> None:
    app = RecordingApp(FrozenServices())
    async with app.run_test(notifications=True, size=(120, 40)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("slash", *typed)
        await wait_until(pilot, lambda: app.screen.filter_text == typed, what="the filter typed")
        await shown_as_written(pilot, app, f"filter: {typed}")  # on the table's lower border as one types


def _called(node: ast.expr) -> str:
    """The name a call calls (`notify` for `self.notify(...)`), or "" for anything but a call."""
    if not isinstance(node, ast.Call):
        return ""
    return node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")


def _literal_title(value: ast.expr) -> bool:
    """Whether a border title is fixed words or text kept as written (`Content(...)`, `Text(...)`)."""
    if isinstance(value, ast.IfExp):
        return _literal_title(value.body) and _literal_title(value.orelse)
    return isinstance(value, ast.Constant) or _called(value) in ("Content", "Text")


def _sinks_reading_markup(path: Path) -> list[str]:
    """`notify(`, `Label(` and `Static(` calls in `path` without `markup=False`; border titles built from a `str`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if _called(node) in ("notify", "Label", "Static"):
            assert isinstance(node, ast.Call)
            keywords = {k.arg: k.value for k in node.keywords}
            markup = keywords.get("markup")
            if not (isinstance(markup, ast.Constant) and markup.value is False):
                found.append(f"{path.name}:{node.lineno} {_called(node)}(")
        elif isinstance(node, ast.Assign) and not _literal_title(node.value):
            titles = [t.attr for t in node.targets if isinstance(t, ast.Attribute)]
            found += [f"{path.name}:{node.lineno} {t} =" for t in titles if t in ("border_title", "border_subtitle")]
    return found


def test_no_notification_label_or_border_title_of_the_dashboard_reads_markup() -> None:
    """Every toast, label and border title shows its words as written: a new one carrying node or typed text is
    safe by default (the tests above show what one left reading markup does)."""
    package = Path(factoryctl.tui.__file__).parent
    assert [s for path in sorted(package.rglob("*.py")) for s in _sinks_reading_markup(path)] == []
