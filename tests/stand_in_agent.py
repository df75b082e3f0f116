"""A stand-in agent shipped as the real one is: a zipapp named like factoryctl's, built from a few lines of Python.

SSH tests that need an agent misbehaving on purpose (crashing, flooding, never answering) write its source and ship
it through the real transport; the packing is the same every time, so it lives here once.
"""

from __future__ import annotations

import textwrap
import zipapp
from pathlib import Path


def stand_in_zipapp(directory: Path, source: str, digest: str = "0123456789abcdef") -> Path:
    """`source` (dedented) as `factoryctl-agent-<digest>.pyz` in `directory`, runnable as `python FILE`."""
    src = directory / "stand-in-src"
    src.mkdir()
    (src / "__main__.py").write_text(textwrap.dedent(source))
    target = directory / f"factoryctl-agent-{digest}.pyz"
    zipapp.create_archive(src, target)
    return target
