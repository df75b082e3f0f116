"""Text a node sends stays on one line, escaped, in the controller's log and in the CLI's error lines.

A hostile agent whose error message was "boom ESC]0;PWNED BEL ESC[2J ... CR LF fake line" had its ESC, BEL and CR
written raw to the controller's stderr (the journal) and its newline forge a log line of its own; in `factoryctl
gpus` the newline still split the error line, so a node could add a `hint:` line. docs/security.md: control
characters, newline included, in lines that quote a node are written as visible escapes.
"""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from cli_process import CLI_ARGV
from factory_yaml import write_factory
from waiting import wait_for

from factoryctl.controller import OneLineFormatter

ESC = "\x1b"
HOSTILE = f"boom{ESC}]0;PWNED-TITLE\x07{ESC}[2J{ESC}[31mRED\r\nfake line\nhint: run this"
ESCAPED = "boom\\x1b]0;PWNED-TITLE\\x07\\x1b[2J\\x1b[31mRED\\x0d\\x0afake line\\x0ahint: run this"
#: The controller's log line: `2026-11-23T09:22:29.607Z WARNING factoryctl.telemetry: ...`.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [A-Z]+ factoryctl(\.\w+)+: ")


def failing_python(tmp_path: Path) -> Path:
    """A node `python` running the real agent, with every sample (asked or streamed) turned into HOSTILE's failure."""
    script = tmp_path / "hostile-python"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, subprocess, sys\n"
        "agent = subprocess.Popen([sys.executable] + sys.argv[1:], stdout=subprocess.PIPE)\n"
        "for line in agent.stdout:\n"
        "    message = json.loads(line)\n"
        "    if isinstance(message.get('result'), dict) and 'gpus' in message['result']:\n"
        "        del message['result']\n"
        "        message['ok'] = False\n"
        f"        message['error'] = {{'kind': 'driver', 'message': {HOSTILE!r}, 'reason': 'driver_failed'}}\n"
        "        line = (json.dumps(message) + '\\n').encode()\n"
        "    sys.stdout.buffer.write(line)\n"
        "    sys.stdout.flush()\n"
    )
    script.chmod(0o755)
    return script


def test_a_log_record_is_one_line_with_a_nodes_text_escaped() -> None:
    formatter = OneLineFormatter("%(levelname)s %(name)s: %(message)s")
    record = logging.LogRecord("factoryctl.telemetry", logging.WARNING, __file__, 1, "%s is down: %s", None, None)
    record.args = ("n1", HOSTILE)
    assert formatter.format(record) == f"WARNING factoryctl.telemetry: n1 is down: {ESCAPED}"
    try:
        raise RuntimeError(HOSTILE)
    except RuntimeError:
        record.exc_info = sys.exc_info()
    lines = formatter.format(record).split("\n")
    assert lines[0] == f"WARNING factoryctl.telemetry: n1 is down: {ESCAPED}"
    assert lines[1] == "Traceback (most recent call last):"  # a traceback keeps its own lines
    assert not any(ESC in line or "\r" in line for line in lines)
    assert "fake line" not in [line.strip() for line in lines]


def test_the_controllers_log_says_a_nodes_failure_on_one_escaped_line(tmp_path: Path) -> None:
    config = write_factory(
        tmp_path, f"n1: {{transport: local, sim: h100-sxm, gpus: 1, python: {failing_python(tmp_path)}}}"
    )
    argv = [*CLI_ARGV, "--config", str(config)]
    log = tmp_path / "controller.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([*argv, "controller", "run"], stderr=err)
    try:
        wait_for(lambda: "n1 is down" in log.read_text(errors="replace"), what="n1 logged down")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert ESC not in text
    assert "\r" not in text
    assert "\x07" not in text
    assert [line for line in text.splitlines() if not LOG_LINE.match(line)] == []
    assert f"n1 is down: {ESCAPED}" in text


def test_gpus_quotes_a_nodes_failure_on_one_line_and_adds_no_hint_of_its_own(tmp_path: Path, cli: Any) -> None:
    python = failing_python(tmp_path)
    config = write_factory(tmp_path, f"n[1-2]: {{transport: local, sim: h100-sxm, gpus: 1, python: {python}}}")
    result = cli("--config", str(config), "gpus")
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"factoryctl: n[1-2] (2): {ESCAPED}"
    assert [line for line in lines if line.startswith("hint: run")] == []
    assert all(line.startswith(("factoryctl: ", "hint: ")) for line in lines), lines
    assert ESC not in result.stderr
