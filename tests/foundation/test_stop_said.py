"""Every one-shot command stopped by Ctrl-C or SIGTERM says `interrupted` or `terminated` with a hint (130, 143).

Typer turned a Ctrl-C out of a command into a silent exit 130, and SIGTERM's default action killed the process on
the spot: `sched simulate`, `nodes`, `demo --headless`... ended saying nothing. Only a Ctrl-C that ends what runs
until stopped (`--watch`, `--follow`, `metrics serve`) stays quiet.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from main_thread_sleep import patch_main_thread_sleep
from reaping import reaped
from silent_listener import listening
from stop_messages import INTERRUPTED, STOP_IDS, STOPS, TERMINATED

from factoryctl.store.rows import Event
from factoryctl.store.sqlite import Store


@pytest.fixture
def sigterm_kept_from_pytest() -> Iterator[list[int]]:
    """A SIGTERM or SIGHUP no handler of factoryctl's takes is noted here rather than ending the test run (their default)."""
    seen: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, frame: seen.append(signum)) for sig in (signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield seen
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@pytest.mark.parametrize(("sig", "status", "said"), STOPS, ids=STOP_IDS)
def test_a_replay_stopped_mid_way_says_so(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sigterm_kept_from_pytest: list[int], sig, status, said
) -> None:
    import factoryctl.scheduler.simulate as simulate_module

    def stopped(*args: object, **kwargs: object) -> None:
        signal.raise_signal(sig)  # its Python handler runs before raise_signal returns
        raise AssertionError("the signal did not stop the replay")

    monkeypatch.setattr(simulate_module, "simulate", stopped)
    trace = tmp_path / "trace.csv"
    trace.write_text("job_id,submit_time_s,duration_s,num_gpus\na,0,10,1\n")
    result = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1", "-o", "json")
    assert (result.exit_code, result.stderr.splitlines(), result.stdout) == (status, said, "")
    assert sigterm_kept_from_pytest == []  # factoryctl's own handler took it


def test_ctrl_c_during_a_replay_with_a_schedule_out_says_so(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--schedule-out FILE` said `terminated` on SIGTERM (its own handler) but nothing on Ctrl-C."""
    import factoryctl.scheduler.simulate as simulate_module

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(simulate_module, "simulate", ctrl_c)
    trace, out = tmp_path / "trace.csv", tmp_path / "out.csv"
    trace.write_text("job_id,submit_time_s,duration_s,num_gpus\na,0,10,1\n")
    result = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1", "--schedule-out", str(out))
    assert (result.exit_code, result.stderr.splitlines()) == (130, INTERRUPTED)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["trace.csv"]  # nothing half-written left


def test_the_sigterm_handler_is_put_back_after_the_run(cli: Any, sigterm_kept_from_pytest: list[int]) -> None:
    before = signal.getsignal(signal.SIGTERM)
    assert cli("--version").exit_code == 0
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.fixture
def store_with_an_event(tmp_path: Path) -> Path:
    config = tmp_path / "factory.yaml"
    config.write_text(f"name: t\nstate_dir: {tmp_path / 'state'}\nnodes:\n  n1: {{transport: local}}\n")
    store = Store(tmp_path / "state" / "factory.db")
    store.add_events([Event(time.time() - 5, "node_up", "n1 is up", node="n1")])
    store.close()
    return config


@pytest.mark.parametrize("follow", ["--follow", "-f"])
def test_ctrl_c_ending_a_follow_says_nothing(
    cli: Any, store_with_an_event: Path, monkeypatch: pytest.MonkeyPatch, follow: str
) -> None:
    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    patch_main_thread_sleep(monkeypatch, ctrl_c)
    result = cli("--config", str(store_with_an_event), "events", follow, "-o", "json")
    assert (result.exit_code, result.stderr) == (130, "")
    assert '"node_up"' in result.stdout


def test_sigterm_ending_a_follow_says_terminated(
    cli: Any, store_with_an_event: Path, monkeypatch: pytest.MonkeyPatch, sigterm_kept_from_pytest: list[int]
) -> None:
    def sigterm(seconds: float) -> None:
        signal.raise_signal(signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the follow")

    patch_main_thread_sleep(monkeypatch, sigterm)
    result = cli("--config", str(store_with_an_event), "events", "--follow")
    assert (result.exit_code, result.stderr.splitlines()) == (143, TERMINATED)


@pytest.mark.parametrize(("sig", "status", "said"), STOPS, ids=STOP_IDS)
@pytest.mark.parametrize("command", [["nodes", "-o", "json"], ["telemetry", "collect", "--once"]])
def test_a_command_waiting_on_a_silent_node_says_it_was_stopped(
    tmp_path: Path, command: list[str], sig: signal.Signals, status: int, said: list[str]
) -> None:
    """The real process, stopped while it waits for a node that accepted the connection and never speaks."""
    assert _stopped_while_waiting(tmp_path, command, [sig]) == (status, said, b"")


def test_sighup_stays_ignored_under_nohup(tmp_path: Path) -> None:
    """Started with SIGHUP ignored (`nohup`), a closed terminal does not stop it: only the SIGTERM after does."""

    def nohup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    stopped = _stopped_while_waiting(tmp_path, ["nodes", "-o", "json"], [signal.SIGHUP, signal.SIGTERM], nohup)
    assert stopped == (143, TERMINATED, b"")


def _stopped_while_waiting(
    tmp_path: Path, command: list[str], signals: list[signal.Signals], preexec: Any = None
) -> tuple[int, list[str], bytes]:
    """Run `command` on a node that never speaks, send `signals` (1 s apart) once it waits: its status, stderr, stdout."""
    accepted: list[object] = []
    with listening(accepted.append) as port:
        config = tmp_path / "factory.yaml"
        config.write_text(
            f"name: t\nstate_dir: {tmp_path / 'state'}\n"
            f"ssh: {{user: root, identity_file: {tmp_path / 'no-key'}, known_hosts: {tmp_path / 'known_hosts'}}}\n"
            f"nodes:\n  mute: {{host: 127.0.0.1, port: {port}}}\n"
        )
        argv = [sys.executable, "-m", "factoryctl", "--config", str(config), *command, "--timeout", "120"]
        popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=preexec)
        with reaped(popen) as proc:
            from waiting import wait_for

            wait_for(lambda: bool(accepted), timeout=60)  # it is waiting for the node's banner now
            for k, sig in enumerate(signals):
                if k:
                    time.sleep(1.0)
                proc.send_signal(sig)
            out, err = proc.communicate(timeout=60)
        for sock in accepted:
            sock.close()  # type: ignore[attr-defined]
    return proc.returncode, err.decode().splitlines(), out
