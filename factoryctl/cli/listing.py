"""Printing a listing the same way everywhere: output form, per-node errors on stderr, exit code, `--watch`."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from factoryctl.cli.render import Column, OutputFormat, emit, pause_while_read, render_listing, report_node_errors
from factoryctl.errors import ExitCode, NodeError, most_severe

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.telemetry.poll import PollResult

#: One hint per error kind, printed once under the per-node lines.
ERROR_HINTS = {
    "dns": "check the node's host in factory.yaml (and its HostName in ~/.ssh/config, if it has one) and your DNS.",
    "refused": "is sshd running on the node, on the configured port?",
    "timeout": "the node or its agent did not answer in time; check the network, or raise --timeout.",
    "banner": "check that the port is sshd's, and that sshd there is not stopped, hung or overloaded.",
    # host_key errors carry their node's own hint (trust, or trust --replace): this is only a fallback
    "host_key": "check the node's host key (`factoryctl nodes check`), then record it with `factoryctl nodes trust` "
    "(with --replace when it changed, or when keys of other types are recorded for it).",
    "auth": "check the node's user and key (User and IdentityFile in ~/.ssh/config, or ssh.user and ssh.identity_file "
    "in factory.yaml) and your ssh-agent.",
    "agent": "run `factoryctl nodes check` on the nodes named above to diagnose their agent.",
    "driver": "check the NVIDIA driver on the node (`nvidia-smi`).",
}

Producer = Callable[[], tuple[Sequence[dict[str, Any]], Sequence[NodeError]]]


def asked(config: FactoryConfig, nodes: Sequence[NodeSpec], timeout: float, fanout: int, quiet: bool) -> PollResult:
    """The nodes' current samples (`current_samples`), with a progress line on a terminal while they are asked.

    A big fleet with unreachable nodes takes minutes; the line ("asking the nodes: 42% of 2,000 nodes done")
    appears after half a second, never under -q or off a terminal, and is wiped before the listing prints.
    """
    from factoryctl.cli.progress import replay_progress
    from factoryctl.telemetry.current import current_samples

    with replay_progress("asking the nodes", quiet, unit="nodes done") as line:
        return current_samples(config, nodes, timeout, fanout, line)


def show_listing(
    produce: Producer,
    columns: Sequence[Column],
    output: OutputFormat,
    no_header: bool,
    watch: bool = False,
    interval: float = 2.0,
    fields: Sequence[str] = (),
) -> int:
    """Produce and print a listing once (or until Ctrl-C with --watch); return the exit status.

    `fields` are the items' JSON keys: the CSV header when there are no items (`render_csv`). Ctrl-C is how every
    `--watch` ends, and it ends it as Ctrl-C ends any command: 130 (docs/cli.md, Exit codes).
    """
    if not watch:
        return _show_once(produce, columns, output, no_header, clear=False, fields=fields)
    try:
        while True:
            _show_once(produce, columns, output, no_header, clear=True, interval=interval, fields=fields)
            pause_while_read(interval)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)


def _show_once(
    produce: Producer,
    columns: Sequence[Column],
    output: OutputFormat,
    no_header: bool,
    clear: bool,
    interval: float = 2.0,
    fields: Sequence[str] = (),
) -> int:
    items, errors = produce()
    text = render_listing(items, [e.as_json() for e in errors], columns, output, no_header, fields)
    if clear and sys.stdout.isatty():
        text = "\x1b[H\x1b[2J" + watch_header(interval, time.time()) + "\n\n" + text
    emit(text)
    report_node_errors((e.as_report() for e in errors), ERROR_HINTS)
    return int(most_severe([e.exit_code for e in errors]))


def watch_header(interval: float, now: float) -> str:
    """`Every 2s: 2026-11-22T17:34:56Z`, the first line of a `--watch` redraw: UTC with Z, as every other time."""
    return f"Every {interval:g}s: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))}"
