"""`metrics serve` stopped with Ctrl-C exits 130, as any command's Ctrl-C (it exited 0, as if serving had succeeded).

Run as a real process so the SIGINT arrives as a terminal's Ctrl-C does.
"""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from pathlib import Path

from reaping import reaped
from sshd_fixture import free_port

FACTORY = "name: lab\nnodes:\n  n1: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"


def test_ctrl_c_ends_metrics_serve_with_130(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY)
    argv = [sys.executable, "-m", "factoryctl", "--config", str(config), "metrics", "serve", "--port", "0"]
    with reaped(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)) as proc:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 30)  # fail, never hang, if it does not start
        assert ready, "metrics serve printed nothing in 30 s"
        first = proc.stderr.readline().decode()  # the whole first line: it is written at once
        assert "serving http://127.0.0.1:" in first, first
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=20)
    assert proc.returncode == 130, rest.decode()
    assert "Traceback" not in rest.decode()


def test_quiet_metrics_serve_prints_nothing_but_serves(tmp_path: Path) -> None:
    """`-q` means nothing but errors on stderr: `serving http://...` was printed anyway."""
    import time
    import urllib.request

    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY)
    port = free_port()
    argv = [sys.executable, "-m", "factoryctl", "-q", "--config", str(config), "metrics", "serve", "--port", str(port)]
    with reaped(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)) as proc:
        body = b""
        for _ in range(120):  # until it answers (or 60 s): no timing is asserted
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
                    body = response.read()
                break
            except OSError:
                time.sleep(0.5)
        assert b"DCGM_FI_DEV_POWER_USAGE" in body
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert err.decode() == ""
