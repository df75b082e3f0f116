"""Soak: the controller for an hour behind a real sshd, through the faults of issue 4, counting what was lost.

    python benchmarks/soak_controller.py --minutes 60 --nodes 8 [--every 120]

Not run in CI. Every `--every` seconds it injects the next fault in turn: an agent killed; sshd killed and
restarted 10 s later; an agent stalled (SIGSTOP) for 15 s; the controller SIGKILLed and restarted 5 s later;
factory.yaml broken then SIGHUP (must be refused), restored then SIGHUP. At the end it stops the controller with
SIGTERM and reports samples expected / stored / lost (overall and outside the fault windows), duplicates, and
`PRAGMA integrity_check`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_controller import write_config  # noqa: E402
from sshd_fixture import SSHD, start_sshd  # noqa: E402

RECOVERY_S = 15.0  # a fault window is the fault plus this much time to reconnect


def agents(cache: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(str(cache) in part for part in cmdline) and "--node" in cmdline:
            found.append(proc)
    return found


class Soak:
    def __init__(self, tmp: Path, nodes: int, interval: float) -> None:
        self.tmp = tmp
        self.cache = tmp / "remote-cache"
        os.environ["FACTORYCTL_REMOTE_CACHE"] = str(self.cache)
        os.environ.pop("SSH_AUTH_SOCK", None)
        self.server = start_sshd(tmp / "sshd")
        self.config = write_config(tmp, self.server, nodes, interval)
        self.good = self.config.read_text()
        self.proc: subprocess.Popen[bytes] | None = None
        self.windows: list[tuple[str, float, float]] = []
        self.log = (tmp / "controller.log").open("ab")
        self.refusals = 0

    def start_controller(self) -> None:
        argv = [
            sys.executable,
            "-c",
            "from factoryctl.cli.app import main; main()",
            "--config",
            str(self.config),
            "controller",
            "run",
        ]
        self.proc = subprocess.Popen(argv, stderr=self.log)

    def fault(self, number: int) -> None:
        kind = ("agent_killed", "sshd_restart", "agent_stalled", "controller_sigkill", "broken_reload")[number % 5]
        start = time.time()
        if kind == "agent_killed":
            found = agents(self.cache)
            if found:
                found[number % len(found)].kill()
        elif kind == "sshd_restart":
            self.server.kill()
            time.sleep(10)
            log = (self.server.root / "sshd.log").open("ab")
            self.server.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.server.root / "sshd_config")],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        elif kind == "agent_stalled":
            found = agents(self.cache)
            if found:
                victim = found[number % len(found)]
                victim.send_signal(signal.SIGSTOP)
                time.sleep(15)
                with contextlib.suppress(psutil.NoSuchProcess):
                    victim.send_signal(signal.SIGCONT)
        elif kind == "controller_sigkill":
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(30)
            time.sleep(5)
            self.start_controller()
        else:
            assert self.proc is not None
            self.config.write_text(self.good + "nodes: [broken\n")
            self.proc.send_signal(signal.SIGHUP)
            time.sleep(3)
            self.refusals += self.proc.poll() is None
            self.config.write_text(self.good)
            self.proc.send_signal(signal.SIGHUP)
        self.windows.append((kind, start, time.time() + RECOVERY_S))
        print(json.dumps({"fault": kind, "at": round(start), "took_s": round(time.time() - start, 1)}), flush=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        self.server.stop()
        for agent in agents(self.cache):
            with contextlib.suppress(psutil.NoSuchProcess):
                agent.kill()


def report(soak: Soak, nodes: int, interval: float, t0: float, t1: float) -> dict[str, Any]:
    from factoryctl.store.sqlite import Store

    store = Store(soak.tmp / "state" / "factory.db")
    stamps = store._query(
        "SELECT DISTINCT node_id, t_ms FROM sample WHERE t_ms >= ? AND t_ms < ?", (int(t0 * 1000), int(t1 * 1000))
    )
    dupes = store._query(
        "SELECT COUNT(*) FROM (SELECT node_id, gpu, t_ms FROM sample GROUP BY 1, 2, 3 HAVING COUNT(*) > 1)"
    )[0][0]
    integrity = store.integrity_check()
    kinds: dict[str, int] = {}
    for event in store.events(t0, limit=100000):
        kinds[event.kind] = kinds.get(event.kind, 0) + 1
    store.close()

    def in_window(t: float) -> bool:
        return any(a <= t < b for _, a, b in soak.windows)

    faulty_s = sum(min(b, t1) - max(a, t0) for _, a, b in soak.windows)
    expected = int(nodes * (t1 - t0) / interval)
    expected_clean = int(nodes * (t1 - t0 - faulty_s) / interval)
    stored_clean = sum(1 for _, t in stamps if not in_window(t / 1000))
    return {
        "nodes": nodes,
        "minutes": round((t1 - t0) / 60, 1),
        "faults": len(soak.windows),
        "broken_reloads_refused_while_running": soak.refusals,
        "samples_expected": expected,
        "samples_stored": len(stamps),
        "samples_lost": max(0, expected - len(stamps)),
        "outside_fault_windows": {
            "expected": expected_clean,
            "stored": stored_clean,
            "lost": max(0, expected_clean - stored_clean),
        },
        "duplicate_rows": dupes,
        "integrity_check": integrity,
        "events": kinds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--every", type=float, default=120.0, help="seconds between faults")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-ctl-") as name:
        soak = Soak(Path(name), args.nodes, args.interval)
        try:
            soak.start_controller()
            time.sleep(30)  # every node up
            t0 = time.time()
            number = 0
            while time.time() - t0 < args.minutes * 60 - args.every:
                time.sleep(args.every)
                soak.fault(number)
                number += 1
            time.sleep(max(0.0, t0 + args.minutes * 60 - time.time()))
            t1 = time.time()
        finally:
            soak.stop()
        print(json.dumps(report(soak, args.nodes, args.interval, t0, t1), indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
