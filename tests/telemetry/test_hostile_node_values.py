"""A compromised node's reply: absurd sample times and terminal control characters, checked where they enter the model.

The end-to-end tests run the real agent on a `transport: local` node whose `python` is a wrapper that rewrites what
the agent says (as the security review's `evilpy` did), so the reply takes the same session and writer path as SSH.
"""

from __future__ import annotations

import math
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from factory_yaml import write_factory
from fakefleet import wait_for

from factoryctl.config import load_config
from factoryctl.controller import Controller
from factoryctl.model.telemetry import (
    INVALID,
    MAX_UNIX_TIME,
    GpuSample,
    NodeSample,
    escape_controls,
    unix_time_or_none,
)
from factoryctl.store.sqlite import Store, StoreError
from factoryctl.telemetry.writer import StoreWriter

ESC = "\x1b"
#: What the review's evil agent put in a GPU name: a window title (OSC), colour, a screen clear, CR and newline.
HOSTILE = f"{ESC}]0;PWNED\x07{ESC}[31;1mRED{ESC}[0m{ESC}[2J\rFAKE\nNL"


def rewriting_python(tmp_path: Path, body: str) -> Path:
    """A node `python` that runs the real agent and passes each stdout line `line` (bytes) through `body` first."""
    script = tmp_path / "hostile-python"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, subprocess, sys\n"
        "agent = subprocess.Popen([sys.executable] + sys.argv[1:], stdout=subprocess.PIPE)\n"
        "for line in agent.stdout:\n"
        f"{body}"
        "    sys.stdout.buffer.write(line)\n"
        "    sys.stdout.flush()\n"
    )
    script.chmod(0o755)
    return script


#: Rewrites every sample's time to 1e18 (finite, so it passed the old number check).
BIG_TIME = (
    "    message = json.loads(line)\n"
    "    result = message.get('result')\n"
    "    if isinstance(result, dict) and 'time' in result:\n"
    "        result['time'] = 1e18\n"
    "        line = (json.dumps(message) + '\\n').encode()\n"
)


# ---------------------------------------------------------------------------------------------------- times


@pytest.mark.parametrize("bad", [1e18, 1e12, MAX_UNIX_TIME + 1, -1.0, math.nan, math.inf])
def test_a_sample_time_no_clock_can_show_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="is not a Unix time between 1970 and 9999"):
        NodeSample("n1", bad)


def test_the_first_and_last_times_a_clock_shows_are_kept() -> None:
    assert NodeSample("n1", 0.0).time == 0.0
    assert NodeSample("n1", MAX_UNIX_TIME).time == MAX_UNIX_TIME
    assert unix_time_or_none(1_700_000_000) == 1_700_000_000.0


def test_an_xid_time_no_clock_can_show_becomes_unknown() -> None:
    gpu = GpuSample.from_json("n1", {"index": 0, "xid_events": [{"xid": 79, "time": 1e18}, {"xid": 48, "time": 5.0}]})
    assert [(x.xid, x.time) for x in gpu.xid_events] == [(79, None), (48, 5.0)]  # the event then takes the sample's
    assert gpu.as_json()["xid_events"][0]["time"] is None


def test_an_xid_with_an_absurd_time_is_stored_at_its_sample_time_with_every_other_node(tmp_path: Path) -> None:
    """The writer turns a new XID into an event at its time: 1e18 failed every batch like a sample time did."""
    t0, clock = 1_700_000_040.0, [1_700_000_041.0]
    store = Store(tmp_path / "factory.db")
    writer = StoreWriter(store, interval_s=1.0, clock=lambda: clock[0])
    writer.set_nodes(["a", "b"])
    wire = {"index": 0, "uuid": "GPU-0", "power_w": 5.0}
    writer.offer(NodeSample("a", t0, gpus=(GpuSample.from_json("a", wire),)))
    writer.offer(NodeSample("b", t0, gpus=(GpuSample.from_json("b", wire),)))
    assert writer.flush() == 2
    clock[0] += 1
    xid = {**wire, "xid_events": [{"xid": 79, "time": 1e18}]}
    writer.offer(NodeSample("a", t0 + 1, gpus=(GpuSample.from_json("a", xid),)))
    writer.offer(NodeSample("b", t0 + 1, gpus=(GpuSample.from_json("b", wire),)))
    assert writer.flush() == 2
    assert [(e.node, e.time) for e in store.events(0) if e.kind == "xid"] == [("a", t0 + 1)]
    store.close()


def test_a_node_reporting_an_absurd_time_does_not_stop_the_others_being_stored(tmp_path: Path) -> None:
    """The review's finding: the store writer failed every flush, so no node's samples were stored at all."""
    evil = rewriting_python(tmp_path, BIG_TIME)
    path = write_factory(
        tmp_path,
        f"l1: {{transport: local, sim: h100-sxm, gpus: 1, python: {evil}}}\n"
        "  l2: {transport: local, sim: h100-sxm, gpus: 1}",
        controller_interval_s=1,
    )
    controller = Controller(load_config(path))
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    database = tmp_path / "state" / "factory.db"
    try:
        wait_for(lambda: len(_stored(database, "l2")) >= 2, timeout=30)
    finally:
        controller.request_stop()
        runner.join(30)
    assert not runner.is_alive()
    assert _stored(database, "l1") == []  # refused as malformed, never stored
    store = Store(database, readonly=True)
    latest = {state.node: sample for state, sample in store.latest()}
    store.close()
    assert latest["l2"] is not None


def _stored(database: Path, node: str) -> list[dict[str, Any]]:
    """The node's stored rows (none while the controller has not made the store yet)."""
    try:
        store = Store(database, readonly=True)
    except StoreError:
        return []
    try:
        return list(store.export([node], 0, MAX_UNIX_TIME))
    finally:
        store.close()


def test_gpus_names_the_node_with_the_absurd_time_and_lists_the_others(tmp_path: Path, cli: Any) -> None:
    evil = rewriting_python(tmp_path, BIG_TIME)
    path = write_factory(
        tmp_path,
        f"l1: {{transport: local, sim: h100-sxm, gpus: 1, python: {evil}}}\n"
        "  l2: {transport: local, sim: h100-sxm, gpus: 1}",
    )
    result = cli("--config", str(path), "gpus", "-o", "json")
    assert result.exit_code != 0
    assert [item["node"] for item in result.json()["items"]] == ["l2"]  # type: ignore[index]
    assert "l1: the agent sent a malformed sample (its time 1e+18 is not a Unix time" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------------- text


def test_control_characters_become_visible_escapes() -> None:
    assert escape_controls(HOSTILE) == "\\x1b]0;PWNED\\x07\\x1b[31;1mRED\\x1b[0m\\x1b[2J\\x0dFAKE\\x0aNL"
    assert escape_controls("tab\there\x7f\x9b") == "tab\\x09here\\x7f\\x9b"  # DEL and C1's one-byte CSI too
    assert escape_controls("NVIDIA H100 80GB HBM3 · Zürich") == "NVIDIA H100 80GB HBM3 · Zürich"
    once = escape_controls(HOSTILE)
    assert escape_controls(once) == once


def test_every_text_of_a_gpu_from_the_wire_is_escaped() -> None:
    gpu = GpuSample.from_json(
        "n1",
        {
            "index": 0,
            "uuid": f"GPU-{ESC}[2J",
            "name": HOSTILE,
            "throttle_reasons": [f"sw_power_cap{ESC}[H"],
            "processes": [{"pid": 7, "name": f"python{ESC}]0;x\x07"}],
            "power_w": None,
            "null_reasons": {"power_w": f"not_supported\r{ESC}[2K"},
        },
    )
    texts = [gpu.uuid, gpu.name, *gpu.throttle_reasons, gpu.processes[0].name, *gpu.null_reasons.values()]
    assert all(text is not None and text.isprintable() for text in texts), texts
    assert gpu.uuid == "GPU-\\x1b[2J"
    assert gpu.null_reasons == {"power_w": "not_supported\\x0d\\x1b[2K"}
    assert GpuSample.from_json("n1", {"index": 0, "uuid": 5}).null_reasons == {"uuid": INVALID}


def test_the_texts_of_a_node_sample_are_escaped() -> None:
    sample = NodeSample(
        "n1", 1.0, agent_version=f"{ESC}[2JVER", backend="sim\n", error="agent", message=f"died: {ESC}]0;PWNED\x07"
    )
    assert (sample.agent_version, sample.backend, sample.message) == (
        "\\x1b[2JVER",
        "sim\\x0a",
        "died: \\x1b]0;PWNED\\x07",
    )


def test_gpus_shows_a_hostile_gpu_name_escaped_in_the_table_and_in_json(tmp_path: Path, cli: Any) -> None:
    body = "    line = line.replace(b'NVIDIA H100 80GB HBM3', json.dumps(" + repr(HOSTILE) + ")[1:-1].encode())\n"
    evil = rewriting_python(tmp_path, body)
    path = write_factory(tmp_path, f"l1: {{transport: local, sim: h100-sxm, gpus: 1, python: {evil}}}")
    table = cli("--config", str(path), "gpus")
    assert table.exit_code == 0, table.stderr
    assert ESC not in table.stdout
    assert "\r" not in table.stdout
    assert "\\x1b]0;PWNED\\x07" in table.stdout
    assert len(table.stdout.strip().splitlines()) == 2  # the header and one row: the newline did not split it
    doc = cli("--config", str(path), "gpus", "-o", "json").json()
    assert doc["items"][0]["name"] == escape_controls(HOSTILE)  # type: ignore[index]


def test_an_agents_last_words_reach_the_terminal_escaped(cli: Any, tmp_path: Path) -> None:
    """A node's stderr quoted in an error (its agent's last words) had its ESC sequences printed raw."""
    python = tmp_path / "badpy"
    python.write_text("#!/bin/sh\nprintf '\\033]0;PWNED\\007boom\\r\\n' >&2\nexit 1\n")
    python.chmod(0o755)
    config = tmp_path / "factory.yaml"
    config.write_text(f"name: t\nnodes:\n  n1: {{transport: local, python: {python}, sim: {{gpus: 1}}}}\n")
    result = cli("--config", str(config), "gpus", "n1")
    assert result.exit_code == 1, result.stderr
    assert "PWNED" in result.stderr
    assert "\x1b" not in result.stderr
    assert "\r" not in result.stderr
    assert "\\x1b]0;PWNED\\x07boom" in result.stderr
