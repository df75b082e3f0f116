"""factoryctl's files changing under a running dashboard or `metrics serve` (an upgrade) is never every node down.

Soak, session 23: after the controller stopped, a dashboard open for 43 minutes polled the nodes itself and showed
`27 down · 0 up` (`ImportError: cannot import name 'command_result' from 'factoryctl.transport.base'`), and
`metrics serve` exported `factoryctl_node_up 0` for all 27: the modules of that path, first imported then, were the
upgrade's, against the old ones in memory. Both now import everything when they start (`load_all`), and a failure to
load factoryctl's own code that happens all the same is theirs, said once: the dashboard's nodes are `stale` under a
notice, `metrics serve`'s scrapes answer 500.

The upgrade is real in the subprocess test (a copy of the package, its file replaced while `metrics serve` runs);
in-process, a module whose import fails stands in for the new file (`sys.modules[name] = None`: its import raises).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from reaping import reaped
from sshd_fixture import free_port
from waiting import wait_for

import factoryctl
from factoryctl.cli.metrics import MetricsSource, metrics_handler
from factoryctl.cli.metrics_http import listen
from factoryctl.demo import demo_config
from factoryctl.live.services import FactorySnapshot
from factoryctl.live.services_polled import PolledServices
from factoryctl.model.telemetry import NodeSample
from factoryctl.stale_code import StaleCode, load_all, own_import_failure

SAID = "factoryctl's files changed under this running {what} (an upgrade?): restart it"
#: The module the hand-over path imports first: a sim fleet's transport (open_transport imports it when it connects).
LAZY = "factoryctl.transport.local"
#: An upgrade's file: it imports a name the old `factoryctl.transport.base` in memory does not have.
UPGRADED_LOCAL = "from factoryctl.transport.base import command_result_of_the_next_release  # noqa\n"


@pytest.fixture
def upgraded(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the transport's module cannot be loaded, as an upgrade's file importing what the old code lacks."""
    monkeypatch.setitem(sys.modules, LAZY, None)


def test_a_dashboard_whose_code_changed_says_so_once_and_shows_no_node_down(tmp_path: Path, upgraded: None) -> None:
    services = PolledServices(demo_config(tmp_path / "state"), "demo[01-03]")
    try:
        services.snapshot()  # starts the links: each connect fails to load the transport
        # the failure is kept (stale.failure) a moment before it is said (the event): wait for the event
        wait_for(lambda: services.snapshot().events, 15.0, "the failure to load noticed and said")
        snapshot = services.snapshot()
    finally:
        services.close()
    assert {node.state for node in snapshot.nodes} == {"stale"}
    assert snapshot.code_changed == SAID.format(what="dashboard")
    assert all(node.message == f"not known: {SAID.format(what='dashboard')}." for node in snapshot.nodes)
    assert [(e.kind, e.severity, e.message) for e in snapshot.events] == [
        ("source", "error", SAID.format(what="dashboard"))
    ]  # said once, and no node_down


def test_a_scrape_of_metrics_serve_whose_code_changed_fails_with_500_said_once(
    tmp_path: Path, upgraded: None, capsys: pytest.CaptureFixture[str]
) -> None:
    source = MetricsSource(demo_config(tmp_path / "state"), min_interval_s=0.0, timeout=10.0)
    server = listen("127.0.0.1", 0, metrics_handler(source))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        answers = [_status(server.server_address[1]) for _ in range(3)]
    finally:
        server.shutdown()
        server.server_close()
    assert [status for status, _ in answers] == [500, 500, 500]
    assert SAID.format(what="metrics serve") in answers[0][1]
    err = capsys.readouterr().err
    assert err.count("factoryctl: metrics: ") == 1, err
    assert f"factoryctl: metrics: {SAID.format(what='metrics serve')} (ModuleNotFoundError: " in err


def _status(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_only_factoryctl_s_own_code_failing_to_load_is_the_process_s_failure() -> None:
    assert own_import_failure(ImportError("cannot import name 'x'", name="factoryctl.transport.base"))
    assert own_import_failure(ModuleNotFoundError("No module named 'factoryctl.gone'", name="factoryctl.gone"))
    assert not own_import_failure(ModuleNotFoundError("No module named 'paramiko'", name="paramiko"))
    assert not own_import_failure(ConnectionRefusedError("refused"))
    said: list[str] = []
    stale = StaleCode("dashboard", said.append)
    assert not stale.notice(OSError("no route to host"))
    assert stale.notice(ImportError("one", name="factoryctl.a"))
    assert stale.notice(ImportError("two", name="factoryctl"))
    assert said == [f"{SAID.format(what='dashboard')} (ImportError: one)"]


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the installed package, first on a subprocess's path: its files are the ones an upgrade replaces."""
    root = tmp_path / "site"
    shutil.copytree(Path(factoryctl.__file__).parent, root / "factoryctl", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_metrics_serve_started_before_an_upgrade_still_polls_its_nodes(tmp_path: Path, package_copy: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: up\nstate_dir: {tmp_path / 'state'}\n"
        "nodes:\n  s[1-2]: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"
    )
    port = free_port()
    argv = [sys.executable, "-m", "factoryctl", "--config", str(config), "metrics", "serve", "--port", str(port)]
    env = {"PYTHONPATH": str(package_copy), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"}
    with reaped(
        subprocess.Popen([*argv, "--min-interval", "0"], stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    ) as proc:
        assert proc.stderr is not None
        assert b"serving http://" in proc.stderr.readline()  # said once it listens: everything is loaded by then
        (package_copy / "factoryctl" / "transport" / "local.py").write_text(UPGRADED_LOCAL)  # the upgrade
        wait_for(lambda: _status(port)[1].count("factoryctl_node_up{") == 2, 60.0, "both nodes exported")
        status, text = _status(port)
        proc.terminate()
        proc.wait(timeout=20)
    assert status == 200
    assert 'factoryctl_node_up{Hostname="s1"} 1' in text
    assert 'factoryctl_node_up{Hostname="s2"} 1' in text


def test_load_all_loads_what_the_hand_over_paths_import_later_and_no_ui() -> None:
    code = (
        "import sys; from factoryctl.stale_code import load_all; load_all(); "
        "print(sorted(m for m in sys.modules if m.startswith(('factoryctl', 'textual'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for module in (LAZY, "factoryctl.transport.ssh", "factoryctl.transport.bundle", "factoryctl.private_files"):
        assert f"'{module}'" in loaded
    for module in ("factoryctl.live.services_polled", "factoryctl.live.services_store", "factoryctl.telemetry.poll"):
        assert f"'{module}'" in loaded
    assert "'textual" not in loaded
    assert "'factoryctl.tui" not in loaded
    assert "'factoryctl.cli" not in loaded
    load_all()  # in this process too: nothing in it fails to import


def test_the_dashboard_s_header_leads_with_it() -> None:
    from rich.console import Console

    from factoryctl.tui.renderables.factory_summary import FactorySummaryRenderable
    from factoryctl.tui.view import summarize

    said = SAID.format(what="dashboard")
    node = NodeSample("n1", 1_700_000_000.0, state="stale", message=f"not known: {said}.")
    snapshot = FactorySnapshot("lab", node.time, (node,), code_changed=said)
    console = Console(width=160, file=io.StringIO(), record=True, color_system=None)
    console.print(FactorySummaryRenderable(summarize(snapshot), now=node.time))
    line = console.export_text().splitlines()[1]
    assert line.startswith(f"{said} │ "), line
