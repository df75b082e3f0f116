"""Shared fixtures: an isolated home for every test and an in-process CLI runner (httpie style)."""

from __future__ import annotations

import io
import signal
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# A test run started in the background (`nohup`, `cmd &` in a script, some CI runners) inherits SIGINT ignored, and
# Python then never installs its KeyboardInterrupt handler. The Ctrl-C tests need what a terminal user has.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


#: The fixtures that start a real sshd (tests/sshd_fixture.py). A test using one, itself or through another fixture
#: (`ssh_node`, `known_hosts`, ...), is marked `sshd`, so that `-m "not sshd"` runs what needs no OpenSSH server.
#: A test that starts one otherwise (`start_sshd` in a fixture of its own) carries the mark itself.
SSHD_FIXTURES = frozenset({"sshd", "sshd_factory"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test whose fixtures start a real sshd with `sshd`."""
    for item in items:
        if SSHD_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.sshd)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """A report's captured output with lone surrogates (tests of undecodable node text log them) escaped.

    pytest-xdist sends each report from its worker as UTF-8, which refuses `\\udcff`: the worker crashed and the
    whole run with it. Escaped, the captured text reads as the log line did (`\\udcff`), and the test's own
    assertions, which ran before, are untouched.
    """
    outcome = yield
    report = outcome.get_result()
    report.sections = [(title, _encodable(text)) for title, text in report.sections]
    if isinstance(report.longrepr, str):
        report.longrepr = _encodable(report.longrepr)


def _encodable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@pytest.fixture(autouse=True)
def unpinned_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ships the agent bytes an earlier in-process `metrics serve` or `dash` pinned (stale_code.freeze_code)."""
    from factoryctl.transport import bundle

    monkeypatch.setattr(bundle, "_PINNED", None)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the developer's own config, state and caches out of every test."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_DATA_HOME", ".local/share"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.delenv("FACTORYCTL_CONFIG", raising=False)
    monkeypatch.delenv("FACTORYCTL_DEBUG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(home)
    return home


@dataclass
class CliResult:
    """What one in-process CLI run produced."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        import json

        return json.loads(self.stdout)


class _Capture(io.StringIO):
    def __init__(self, text: str = "", tty: bool = False) -> None:
        super().__init__(text)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """Run the whole `factoryctl` CLI in this process and capture stdout, stderr and the exit status."""
    from factoryctl.cli.app import run

    def invoke(*args: str, stdin: str = "", tty: bool = False) -> CliResult:
        """Run `factoryctl ARGS`; `stdin` is what the user types, on a terminal when `tty`."""
        out, err = _Capture(), _Capture()
        old = sys.stdout, sys.stderr, sys.stdin
        sys.stdout, sys.stderr, sys.stdin = out, err, _Capture(stdin, tty)
        try:
            code = run(list(args))
        finally:
            sys.stdout, sys.stderr, sys.stdin = old
        return CliResult(code, out.getvalue(), err.getvalue())

    return invoke
