"""Rendering is apart from the option definitions: cli/render.py loads neither typer nor the fan-out.

The shared options (`-o`, `--no-header`, `--watch`, `--interval`, `--fanout`) live in cli/options.py; a renderer
(the TUI's tables, a test, the controller) can import cli/render.py without building Typer options or loading
transport/fanout.py for `--fanout`'s bounds.
"""

from __future__ import annotations

import subprocess
import sys

import typer

from factoryctl.cli import options
from factoryctl.transport.fanout import DEFAULT_FANOUT, MAX_FANOUT


def test_importing_render_loads_no_typer_and_no_fanout() -> None:
    code = (
        "import sys\n"
        "import factoryctl.cli.render\n"
        "print(sorted(m for m in ('typer', 'factoryctl.transport.fanout', 'factoryctl.cli.options') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_the_shared_options_are_defined_in_options() -> None:
    for name in (
        "OUTPUT_OPTION",
        "DOCUMENT_OUTPUT_OPTION",
        "NO_HEADER_OPTION",
        "DOCUMENT_NO_HEADER_OPTION",
        "WATCH_OPTION",
        "INTERVAL_OPTION",
        "FANOUT_OPTION",
    ):
        assert isinstance(getattr(options, name), typer.models.OptionInfo), name
    assert options.FANOUT_OPTION.default == DEFAULT_FANOUT
    assert options.FANOUT_OPTION.max == MAX_FANOUT
