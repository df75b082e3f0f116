"""A bounded fan-out that Ctrl-C can leave at once.

`concurrent.futures` joins its worker threads on interpreter exit, so an interrupted `factoryctl exec` would sit
until every node's command timed out. Here each node runs on a daemon thread, at most `fanout` at a time, and the
caller waits in short slices, so KeyboardInterrupt reaches it immediately and the process can exit (the caller
interrupts what still runs: see `exec`). Results come back in input order; a failure is the node's NodeError.
A ConfigError or UsageError met on one node (a bad ProxyJump in ~/.ssh/config) is that node's result too, of kind
`config` or `usage` with its own exit code (3, 2), which outranks the nodes' failures (`errors.most_severe`): the
other nodes' results are kept (exec's output, power changes that must reach the audit log).
A `cancel` event ends the wait the same way without a signal (SIGINT may be ignored: `cmd &` in a script), by
raising Cancelled: `exec --lines` sets it when its stdout's reader goes away.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from factoryctl.errors import ConfigError, FactoryError, NodeError, UsageError
from factoryctl.model.inventory import NodeSpec

T = TypeVar("T")


class Cancelled(Exception):
    """The `cancel` event was set while fan_out waited; the work still running is left to the caller to stop."""


def as_node_error(node: str, exc: BaseException) -> NodeError:
    """Classify a failure on one node; unexpected ones become `agent` errors instead of crashing the fan-out.

    A config or usage error keeps its kind (`config`, `usage`) and exit code.
    """
    if isinstance(exc, NodeError):
        return exc
    if isinstance(exc, (ConfigError, UsageError)):
        error = NodeError(node, "config" if isinstance(exc, ConfigError) else "usage", exc.message, exc.hint)
        error.exit_code = exc.exit_code  # NodeError's kinds map node failures only
        return error
    if isinstance(exc, FactoryError):
        return NodeError(node, "agent", exc.message, exc.hint)
    return NodeError(node, "agent", f"{type(exc).__name__}: {exc}", "rerun with --debug for details.")


def fan_out(
    nodes: Sequence[NodeSpec],
    work: Callable[[NodeSpec], T],
    fanout: int = 64,
    cancel: threading.Event | None = None,
) -> list[tuple[NodeSpec, T | NodeError]]:
    """Run `work` on every node, at most `fanout` at once; interruptible while waiting (Ctrl-C, or `cancel`)."""
    results: list[T | NodeError | None] = [None] * len(nodes)
    slots = threading.BoundedSemaphore(max(1, fanout))
    finished = threading.Semaphore(0)

    def run(i: int, node: NodeSpec) -> None:
        try:
            results[i] = work(node)
        except Exception as exc:
            results[i] = as_node_error(node.name, exc)
        finally:
            slots.release()
            finished.release()

    def wait(semaphore: threading.Semaphore) -> None:
        while not semaphore.acquire(timeout=0.2):
            if cancel is not None and cancel.is_set():
                raise Cancelled

    for i, node in enumerate(nodes):
        wait(slots)
        threading.Thread(target=run, args=(i, node), daemon=True, name=f"fanout-{node.name}").start()
    for _ in nodes:
        wait(finished)
    return [(node, cast("T | NodeError", result)) for node, result in zip(nodes, results, strict=True)]
