"""The nvidia-smi bridge refuses the request fields the agent refuses, as the agent does, and writes only JSON.

The bridge shares the agent's request reading (factoryctl.agent.protocol). It took `"clamp": "no"` as true and
changed the limit, named a missing op `None`, and wrote its lines with `json.dumps` as it was, which writes a NaN that
no JSON reader takes (nvidia-smi printing `nan` for a value became one). Here the bridge runs over a real sshd, its
nvidia-smi the simulated driver's shim, and its answers are compared with the real agent's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from smi_wire import Wire, agent_answers, answers_with_clock, bare_bridge
from sshd_fixture import sshd_factory  # noqa: F401

from factoryctl.sim.state import SimNode
from factoryctl.transport.smi_query import QUERY, parse_query

#: Lines both must refuse; the set_power_limit asks for 1 W, which a clamp would raise to the minimum: a change.
REFUSED = [
    '{"id": 1e400, "op": "clock"}',
    '{"id": -1e400, "op": "clock"}',
    '{"id": true, "op": "clock"}',
    '{"id": 4}',
    '{"id": 5, "op": null}',
    json.dumps({"id": 6, "op": "set_power_limit", "gpus": [0], "watts": 1, "clamp": "no"}),
    json.dumps({"id": 7, "op": "set_power_limit", "gpus": [0], "watts": 1, "clamp": None}),
]


@pytest.fixture
def wire(sshd_factory: Any, tmp_path: Path) -> Iterator[Wire]:  # noqa: F811
    """A bridge to a 2-GPU simulated node without Python, its hello read."""
    with bare_bridge(sshd_factory(), tmp_path) as bridge_wire:
        yield bridge_wire


def test_the_bridge_refuses_them_as_the_agent_does_and_changes_nothing(wire: Wire, tmp_path: Path) -> None:
    expected = agent_answers(tmp_path, REFUSED)
    assert [answer["error"]["message"] for answer in expected] == [
        "the request is not valid JSON",
        "the request is not valid JSON",
        "a request's id must be a number or a string",
        "the request has no op",
        "the request has no op",
        "clamp must be true or false",
        "clamp must be true or false",
    ]

    assert answers_with_clock(wire.send_line, wire.read, REFUSED) == expected
    assert SimNode(tmp_path / "sim", "bare", "lab").enforced_limit_w(0) == 700.0  # the default: unchanged


def test_a_value_nvidia_smi_prints_as_nan_or_inf_is_unreadable_not_a_number() -> None:
    row = {"index": "0", "uuid": "GPU-1", "name": "H100", "power.draw": "nan", "temperature.gpu": "inf"}
    gpu = parse_query(", ".join(row.get(name, "1") for name, _, _ in QUERY) + "\n")[0]
    assert (gpu["power_w"], gpu["temperature_c"]) == (None, None)
    assert gpu["null_reasons"]["power_w"] == "unreadable value 'nan'"
    json.dumps(gpu, allow_nan=False)
