"""Drain, resume and power-cap actions shared by the main and node screens: confirm first, act in a thread worker.

Read-only mode hides them (`check_action` returns False, so they vanish from the footer and their keys do nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual import work
from textual.binding import Binding, BindingType
from textual.screen import Screen

from factoryctl.errors import FactoryError, NodeError
from factoryctl.model.telemetry import NodeSample
from factoryctl.tui import text as fmt
from factoryctl.tui.screens.confirm import ConfirmScreen
from factoryctl.tui.screens.power_cap import PowerCapScreen, answering_gpus

if TYPE_CHECKING:
    from factoryctl.tui.app import DashboardApp

WRITE_ACTIONS = frozenset({"drain", "resume", "power_cap"})


def describe_cap_result(node: str, watts: float, answers: list[dict[str, Any]]) -> str:
    """`demo03: 8 GPUs capped at 450 W` (+ `clamped from 150 W` when the agent clamped).

    A GPU whose new limit is unknown (`enforced_w` null: lost right after its set, or nvidia-smi's read-back failed)
    is said so, never shown as capped at 0 W: `n1: 2 GPUs capped; the new limit could not be read back`.
    """
    from factoryctl.power.limits import limit_changes

    changes = limit_changes(node, answers)
    enforced = sorted({c.enforced_w for c in changes if c.enforced_w is not None})
    unknown = sum(1 for c in changes if c.enforced_w is None)
    where = ", ".join(fmt.watts(w) for w in enforced) or ("" if unknown else fmt.watts(watts))
    note = f" (clamped from {fmt.watts(watts)})" if any(c.clamped for c in changes) else ""
    said = f"{node}: {len(changes)} GPUs capped{f' at {where}' if where else ''}{note}"
    if unknown:
        whose = "" if unknown == len(changes) else f" of {unknown} of them"
        said += f"; the new limit{whose} could not be read back"
    return said


def error_said(error: FactoryError) -> str:
    """What a failed action's notification says: a node's error names its node first (`demo01: ...`), then its hint.

    A `NodeError`'s message leaves its node out (its `node` says it): on the main screen, where the cursor may have
    moved on by the time the answer comes, nothing else would say which node failed. A message that already begins
    with its node (`demo01 is not connected: ...`) keeps it once, as the CLI's stderr does (`cli.app._print_error`).
    """
    message = error.said() if isinstance(error, NodeError) else error.message
    return message + (f"\n{error.hint}" if error.hint else "")


class NodeActionsScreen(Screen[None]):
    """A screen with a current node that the operator may drain, resume or cap."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "drain", "Drain", tooltip="drain the node: the scheduler places no new job on it (asks first)"),
        Binding("r", "resume", "Resume", tooltip="resume a drained node (asks first)"),
        Binding("p", "power_cap", "Cap", tooltip="set the power cap of every GPU of the node, clamped to its range"),
    ]

    @property
    def dashboard(self) -> DashboardApp:
        """The app, typed."""
        return cast("DashboardApp", self.app)

    def current_node(self) -> str | None:
        """The node the actions apply to."""
        raise NotImplementedError

    def current_sample(self) -> NodeSample | None:
        """The latest sample of the current node."""
        node = self.current_node()
        snapshot = self.dashboard.snapshot
        return snapshot.node(node) if snapshot and node else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the write actions in read-only mode."""
        return not (action in WRITE_ACTIONS and self.dashboard.read_only)

    def action_drain(self) -> None:
        """Ask for a reason, then drain the current node."""
        node = self.current_node()
        if node is None:
            return
        snapshot = self.dashboard.snapshot
        if snapshot and node in snapshot.drained:
            self.notify(f"{node} is already drained.", severity="warning", markup=False)
            return

        def done(reason: str | None) -> None:
            if reason is not None:
                self._drain(node, reason or "drained from the dashboard")

        self.app.push_screen(
            ConfirmScreen(
                f"Drain {node}? The scheduler places no new job on it.", f"drain {node}", "Drain", "reason (optional)"
            ),
            done,
        )

    def action_resume(self) -> None:
        """Confirm, then resume the current node."""
        node = self.current_node()
        if node is None:
            return
        snapshot = self.dashboard.snapshot
        if snapshot and node not in snapshot.drained:
            self.notify(f"{node} is not drained.", severity="warning", markup=False)
            return

        def done(answer: str | None) -> None:
            if answer is not None:
                self._resume(node)

        self.app.push_screen(
            ConfirmScreen(f"Resume {node}? The scheduler may use it again.", f"resume {node}", "Resume"), done
        )

    def action_power_cap(self) -> None:
        """Ask for watts, then cap every GPU of the current node (those that answer when one is lost)."""
        sample = self.current_sample()
        if sample is None or sample.state == "down" or not sample.gpus:
            where = self.current_node() or "This node"
            self.notify(f"{where} is not reachable: no power cap can be set.", severity="warning", markup=False)
            return
        node, gpus = sample.node, answering_gpus(sample)
        if gpus == []:
            self.notify(
                f"No GPU of {node} answers (all lost): no power cap can be set.", severity="warning", markup=False
            )
            return

        def done(watts: float | None) -> None:
            if watts is not None:
                self._set_cap(node, watts, gpus)

        self.app.push_screen(PowerCapScreen(sample), done)

    @work(thread=True, group="actions", exit_on_error=False)
    def _drain(self, node: str, reason: str) -> None:
        self._run(lambda: self.dashboard.services.drain(node, reason), f"{node} drained: {reason}")

    @work(thread=True, group="actions", exit_on_error=False)
    def _resume(self, node: str) -> None:
        self._run(lambda: self.dashboard.services.resume(node), f"{node} resumed")

    @work(thread=True, group="actions", exit_on_error=False)
    def _set_cap(self, node: str, watts: float, gpus: list[int] | None) -> None:
        def call() -> str:
            return describe_cap_result(node, watts, self.dashboard.services.set_power_cap(node, watts, gpus))

        self._run(call, None)

    def _run(self, call: Callable[[], object], success: str | None) -> None:
        """Run `call` (in the worker thread) and report back on the UI thread.

        The workers do not exit the app on an error, so whatever `call` raises must be reported here: any other
        exception than a `FactoryError` is a bug, said as `cli.app.main` says it ("unexpected error: ...").
        """
        try:
            result = call()
        except FactoryError as error:
            self.app.call_from_thread(self._report, error_said(error), "error")
            return
        except Exception as exc:
            text = f"unexpected error: {type(exc).__name__}: {exc}\nPlease report it."
            self.app.call_from_thread(self._report, text, "error")
            return
        self.app.call_from_thread(self._report, success or str(result), "information")

    def _report(self, text: str, severity: str) -> None:
        """Notify `text` as written: it carries an agent's words or a typed reason (`[/]` is no markup here)."""
        self.notify(text, severity=severity, timeout=6, markup=False)  # type: ignore[arg-type]
        self.dashboard.request_snapshot()
