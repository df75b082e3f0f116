"""A stand-in agent shipped as the real one is: a zipapp named like factoryctl's, built from a few lines of Python.

SSH tests that need an agent misbehaving on purpose (crashing, flooding, never answering) write its source and ship
it through the real transport; the packing is the same every time, so it lives here once, and so does the agent
that never says hello (`hanging_zipapp`), which several tests start.
"""

from __future__ import annotations

import contextlib
import textwrap
import zipapp
from collections.abc import Iterator
from pathlib import Path

import psutil

#: A stand-in agent that never says hello: it writes its pid to a file (the test's sign that it started), then waits.
HANGS = """
import os, time
with open({started!r} + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace({started!r} + ".tmp", {started!r})
time.sleep(600)
"""


def stand_in_zipapp(directory: Path, source: str, digest: str = "0123456789abcdef") -> Path:
    """`source` (dedented) as `factoryctl-agent-<digest>.pyz` in `directory`, runnable as `python FILE`."""
    src = directory / "stand-in-src"
    src.mkdir()
    (src / "__main__.py").write_text(textwrap.dedent(source))
    target = directory / f"factoryctl-agent-{digest}.pyz"
    zipapp.create_archive(src, target)
    return target


@contextlib.contextmanager
def hanging_zipapp(directory: Path) -> Iterator[tuple[Path, Path]]:
    """The zipapp of an agent that never says hello (`HANGS`), and the file its pid appears in once it runs.

    The agent is killed on the way out, if it started.
    """
    started = directory / "agent-started"
    (directory / "zipapp").mkdir()
    try:
        yield stand_in_zipapp(directory / "zipapp", HANGS.format(started=str(started))), started
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, psutil.NoSuchProcess):
            psutil.Process(int(started.read_text())).kill()
