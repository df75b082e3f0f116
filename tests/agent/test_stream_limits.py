"""An agent runs at most MAX_STREAMS streams, and `stop` refuses a `stream` that is no id as a usage error.

The security review sent 3000 `stream` requests with distinct ids: the agent started 3000 threads (91 MB) for one
client, which needs one (docs/agent-protocol.md, Operations). And `stop` with a list as `stream` was answered
`stop failed: TypeError("unhashable type: 'list'")` as an internal `agent` error, printed on the agent's stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from factoryctl.agent.protocol import MAX_STREAMS, RequestError, stream_field

HOUR = 3600  # the interval of every stream here: one sample each, at its start


def thread_count(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def test_streams_past_the_most_an_agent_serves_are_refused_until_one_stops(start_agent: Any) -> None:
    agent = start_agent()
    threads_before = thread_count(agent.proc.pid)
    replies = [agent.request("stream", interval_s=HOUR) for _ in range(MAX_STREAMS + 40)]
    started = [r["id"] for r in replies if r["ok"]]
    assert len(started) == MAX_STREAMS
    refusal = {
        "kind": "usage",
        "message": f"this agent already runs {MAX_STREAMS} streams, the most it serves: stop one first",
    }
    assert all(r["error"] == refusal for r in replies if not r["ok"])
    # one thread per stream, give or take two of the interpreter's own
    assert thread_count(agent.proc.pid) <= threads_before + MAX_STREAMS + 2
    assert agent.request("stop", stream=started[0])["result"]["stopped"] is True
    assert agent.request("stream", interval_s=HOUR)["ok"] is True  # room again for one
    assert agent.request("stream", interval_s=HOUR)["error"] == refusal
    assert agent.request("stop")["result"]["stopped"] is True  # every stream
    assert agent.request("stream", interval_s=HOUR)["ok"] is True


@pytest.mark.parametrize("bad", [[1], {"id": 1}, True])
def test_stop_with_a_stream_that_is_no_id_is_a_usage_error_and_nothing_on_stderr(start_agent: Any, bad: Any) -> None:
    agent = start_agent()
    stream_id = agent.request("stream", interval_s=HOUR)["id"]
    reply = agent.request("stop", stream=bad)
    message = "stream must be the id of a stream request (a number or a string), or null for all"
    assert (reply["ok"], reply["error"]) == (False, {"kind": "usage", "message": message})
    assert agent.request("stop", stream=stream_id)["result"]["stopped"] is True  # still running, and stoppable
    assert agent.request("shutdown")["ok"] is True
    assert agent.proc.wait(timeout=10) == 0
    assert agent.proc.stderr.read() == ""


def test_stream_field_reads_ids_and_null() -> None:
    assert stream_field({}) is None
    assert stream_field({"stream": None}) is None
    assert [stream_field({"stream": s}) for s in (3, 2.5, "a")] == [3, 2.5, "a"]
    refused_values: list[Any] = [[], {}, False]
    for bad in refused_values:
        with pytest.raises(RequestError) as refused:
            stream_field({"stream": bad})
        assert refused.value.kind == "usage"
