"""Find the agent subprocesses this test process started for a node (local transport), by their `--node` argument."""

from __future__ import annotations

import psutil


def agents_of(node: str) -> list[psutil.Process]:
    """This test process's agent subprocesses serving `node`."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            argv = child.cmdline()
        except psutil.Error:
            continue
        if "--node" in argv and argv[argv.index("--node") + 1] == node:
            found.append(child)
    return found
