"""The agent's wire protocol, against the real zipapp in a subprocess (docs/agent-protocol.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from factoryctl.agent.sampler import GPU_FIELDS


def test_hello_comes_first(start_agent):
    agent = start_agent()
    hello = agent.hello
    assert hello["type"] == "hello"
    assert hello["protocol"] == 1
    assert hello["backend"] == "sim"
    assert hello["node"] == "n1"
    assert hello["gpus"] == 8
    assert hello["agent_version"]
    assert hello["python"].count(".") == 2


def test_sample_has_every_gpu_field_with_sane_values(start_agent):
    agent = start_agent()
    reply = agent.request("sample")
    assert reply["ok"] is True
    sample = reply["result"]
    assert sample["backend"] == "sim"
    assert abs(sample["time"] - time.time()) < 60
    assert set(sample["host"]) == {"cpu_pct", "memory_used_mib", "memory_total_mib", "load_1m"}
    assert len(sample["gpus"]) == 8
    uuids = set()
    for gpu in sample["gpus"]:
        assert tuple(gpu) == GPU_FIELDS
        assert gpu["null_reasons"] == {}
        assert gpu["name"] == "NVIDIA H100 80GB HBM3"
        assert gpu["uuid"].startswith("GPU-")
        uuids.add(gpu["uuid"])
        assert 20 <= gpu["power_w"] <= gpu["power_limit_w"] == 700.0
        assert (gpu["power_limit_min_w"], gpu["power_limit_max_w"], gpu["power_limit_default_w"]) == (200, 700, 700)
        assert gpu["temperature_slowdown_c"] == 87
        assert gpu["memory_total_mib"] == 80 * 1024
        assert 0 <= gpu["utilization_pct"] <= 100
        assert gpu["energy_j"] >= 0
        assert gpu["ecc_uncorrected"] == 0
        assert isinstance(gpu["throttle_reasons"], list)
        assert gpu["processes"] == []
        assert gpu["xid_events"] == []
    assert len(uuids) == 8


def test_garbage_lines_get_an_agent_error_and_the_agent_keeps_running(start_agent):
    agent = start_agent()
    agent.send_line("this is not json")
    assert agent.read() == {
        "id": None,
        "ok": False,
        "error": {"kind": "agent", "message": "the request is not valid JSON"},
    }
    agent.send_line("[1, 2]")
    assert agent.read()["error"]["kind"] == "agent"
    assert agent.request("frobnicate")["error"]["kind"] == "usage"
    assert agent.request("sample")["ok"] is True


def test_out_of_range_limit_is_refused_and_nothing_changes(start_agent):
    agent = start_agent()
    reply = agent.request("set_power_limit", gpus=[0, 1], watts=900)
    assert reply["ok"] is False
    assert reply["error"]["kind"] == "usage"
    assert "200-700 W" in reply["error"]["message"]
    limits = [g["power_limit_w"] for g in agent.request("sample")["result"]["gpus"]]
    assert limits == [700.0] * 8


def test_set_power_limit_answers_before_and_enforced_and_persists(start_agent):
    agent = start_agent()
    reply = agent.request("set_power_limit", gpus=[2, 3], watts=450)
    assert reply["ok"] is True
    assert reply["result"] == {
        "gpus": [
            {"index": 2, "before_w": 700.0, "enforced_w": 450.0, "clamped": False},
            {"index": 3, "before_w": 700.0, "enforced_w": 450.0, "clamped": False},
        ]
    }
    gpus = agent.request("sample")["result"]["gpus"]
    assert [g["power_limit_w"] for g in gpus] == [700, 700, 450, 450, 700, 700, 700, 700]
    assert gpus[2]["power_w"] <= 450
    agent.close()
    # The next process reads the limit the previous one set.
    other = start_agent()
    gpus = other.request("sample")["result"]["gpus"]
    assert gpus[2]["power_limit_w"] == 450.0


def test_clamp_true_clamps_into_range(start_agent):
    agent = start_agent()
    reply = agent.request("set_power_limit", gpus=None, watts=50, clamp=True)
    assert reply["ok"] is True
    assert {(g["enforced_w"], g["clamped"]) for g in reply["result"]["gpus"]} == {(200.0, True)}
    reset = agent.request("reset_power_limit", gpus=[0])
    assert reset["result"]["gpus"] == [{"index": 0, "before_w": 200.0, "enforced_w": 700.0, "clamped": False}]


def test_bad_arguments_are_usage_errors(start_agent):
    agent = start_agent()
    assert agent.request("set_power_limit", gpus=[9], watts=300)["error"]["kind"] == "usage"
    assert agent.request("set_power_limit", gpus=[0], watts="lots")["error"]["kind"] == "usage"
    assert agent.request("stream", interval_s=0)["error"]["kind"] == "usage"
    assert agent.request("inject", fault="meteor")["error"]["kind"] == "usage"


def test_unsupported_field_is_null_with_a_reason(start_agent):
    agent = start_agent("--unsupported", "ecc_uncorrected,energy_j")
    gpu = agent.request("sample")["result"]["gpus"][0]
    assert gpu["ecc_uncorrected"] is None
    assert gpu["energy_j"] is None
    assert gpu["null_reasons"] == {"ecc_uncorrected": "not supported", "energy_j": "not supported"}
    assert gpu["power_w"] is not None


def test_lost_gpu_is_all_null_with_reason(start_agent):
    agent = start_agent()
    assert agent.request("inject", gpus=[1], fault="lost")["ok"] is True
    gpus = agent.request("sample")["result"]["gpus"]
    lost = gpus[1]
    assert lost["index"] == 1
    assert all(lost[f] is None for f in lost if f not in ("index", "xid_events", "null_reasons"))
    assert set(lost["null_reasons"].values()) == {"gpu_lost"}
    assert gpus[0]["power_w"] is not None
    agent.request("inject", fault="reset")
    assert agent.request("sample")["result"]["gpus"][1]["power_w"] is not None


def test_stream_emits_samples_until_stopped(start_agent):
    agent = start_agent()
    agent.send_line(json.dumps({"id": 7, "op": "stream", "interval_s": 0.05}))
    assert agent.read() == {"id": 7, "ok": True, "result": {"streaming": True}}
    samples = [agent.read() for _ in range(3)]
    assert all(s["id"] == 7 and s["type"] == "sample" and len(s["result"]["gpus"]) == 8 for s in samples)
    energies = [s["result"]["gpus"][0]["energy_j"] for s in samples]
    assert energies == sorted(energies)
    agent.send_line(json.dumps({"id": 8, "op": "stop", "stream": 7}))
    while (msg := agent.read())["id"] != 8:
        assert msg["type"] == "sample"
    assert msg == {"id": 8, "ok": True, "result": {"stopped": True}}
    assert agent.request("sample")["ok"] is True  # nothing streamed after the stop reply


def test_eof_exits_cleanly_and_shutdown_says_bye(start_agent):
    agent = start_agent()
    assert agent.close() == 0
    other = start_agent()
    assert other.request("shutdown")["result"] == {"bye": True}
    assert other.proc.wait(timeout=10) == 0


def test_inject_on_a_real_node_is_a_usage_error(start_agent):
    agent = start_agent(sim=None, node="real")
    assert agent.hello["backend"] == "nvml"
    reply = agent.request("inject", fault="lost")
    assert reply["error"]["kind"] == "usage"
    assert "not a simulated node" in reply["error"]["message"]


def test_a_sim_state_dir_it_cannot_use_names_the_simulated_driver(start_agent, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    agent = start_agent("--state-dir", str(blocker / "state"))
    reply = agent.request("sample")
    assert reply["error"]["kind"] == "driver"
    assert reply["error"]["message"].startswith("the simulated driver (state under the state_dir) is not available")


def test_agent_on_sim_never_imports_pynvml(zipapp: Path, tmp_path: Path):
    argv = [sys.executable, "-X", "importtime", str(zipapp), "--node", "n1", "--sim", "h100-sxm"]
    argv += ["--state-dir", str(tmp_path)]
    req = json.dumps({"id": 1, "op": "sample"}) + "\n"
    done = subprocess.run(argv, input=req, capture_output=True, text=True, timeout=30, check=True)
    assert '"ok":true' in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "factoryctl.sim.nvml" in imported
    assert "pynvml" not in imported
    argv_real = [sys.executable, "-X", "importtime", str(zipapp), "--node", "n1"]
    done = subprocess.run(argv_real, input="", capture_output=True, text=True, timeout=30, check=True)
    assert "pynvml" in {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}


def test_xid_events_show_up_on_their_gpu(start_agent):
    agent = start_agent()
    agent.request("sample")  # registers for events
    assert agent.request("inject", gpus=[5], fault="xid", xid=48)["result"]["injected"]["xid"] == 48
    gpus = agent.request("sample")["result"]["gpus"]
    assert [x["xid"] for x in gpus[5]["xid_events"]] == [48]
    assert all(g["xid_events"] == [] for g in gpus if g["index"] != 5)
    assert agent.request("inject", gpus=[5], fault="xid", xid=79)["ok"]
    lost = agent.request("sample")["result"]["gpus"][5]
    assert [x["xid"] for x in lost["xid_events"]] == [48, 79]
    assert lost["null_reasons"]["power_w"] == "gpu_lost"


def test_bad_simulation_arguments_exit_2_before_hello(zipapp: Path, tmp_path: Path):
    for extra in (["--sim", "rtx-9090"], ["--sim", "h100-sxm", "--unsupported", "warp_drive"]):
        argv = [sys.executable, str(zipapp), "--node", "n1", "--state-dir", str(tmp_path), *extra]
        done = subprocess.run(argv, input="", capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 2
        assert done.stdout == ""
        assert "factoryctl-agent:" in done.stderr


def test_replies_and_streamed_samples_never_interleave(start_agent):
    agent = start_agent()
    agent.send_line(json.dumps({"id": 1, "op": "stream", "interval_s": 0.05}))
    for i in range(2, 22):
        op = {"id": i, "op": "sample"} if i % 2 else {"id": i, "op": "set_power_limit", "gpus": [0], "watts": 300 + i}
        agent.send_line(json.dumps(op))
    answered: dict[int, dict] = {}
    streamed = 0
    while len(answered) < 21:
        msg = agent.read()  # each line parses as one JSON object
        if msg.get("type") == "sample":
            assert msg["id"] == 1
            streamed += 1
        else:
            assert msg["id"] not in answered
            answered[msg["id"]] = msg
    assert all(m["ok"] for m in answered.values())
    assert answered[21]["result"]["gpus"][0]["power_limit_w"] == 320.0
    assert streamed >= 1


def test_clock_answers_the_agents_time_at_once(start_agent):
    """`clock`: a round trip bounding the node's clock (docs/agent-protocol.md), answered while a stream runs."""
    agent = start_agent()
    agent.request("stream", interval_s=0.2)
    asked = time.time()
    reply = agent.request("clock")
    assert reply["ok"] is True
    assert asked <= reply["result"]["time"] <= time.time()
    assert set(reply["result"]) == {"time"}
