"""A lost GPU's refusal names the GPU, not the node, and leaves the other GPUs to the hint, whichever agent said it.

It read `n47: GPU 3 on n47 is lost; nothing was changed (its other GPUs can be addressed alone: n47/0-2,4-7)`, then a
hint with the same `n47/0-2,4-7`; folded over 4 nodes, `n[44-47] (4): GPU 3 on n[44-47] is lost ...`. This agent
sends the other GPUs as the error's `other_gpus` (docs/agent-protocol.md), and the client reads them there, not in
the message; the agents of the two versions before it still send them in their sentences, which read as this one's.
Fake agents answer with each, as the real one is checked to.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_session_error_kinds import Answering, answering, refusal  # noqa: F401 - the fixture, as a parameter

from factoryctl.cli.power_limits import hint_lost_gpus
from factoryctl.transport.hints import LostGpuError

OLDER = "GPU 3 on gpu07 is lost; nothing was changed (its other GPUs can be addressed alone: gpu07/0-2,4-7)"
OLD = "GPU 3 is lost; nothing was changed (its other GPUs can be addressed alone: 0-2,4-7)"
SAID = "GPU 3 is lost; nothing was changed"
#: What this agent sends: the sentence, and the other GPUs as a field (unsorted here: the client sorts them).
THIS = {"message": SAID, "other_gpus": [7, 0, 1, 2, 4, 5, 6]}


@pytest.mark.parametrize(
    "answer", [{"message": OLDER}, {"message": OLD}, THIS], ids=["agent-before-last", "previous-agent", "this-agent"]
)
@pytest.mark.parametrize("reason", [{"reason": "gpu_lost"}, {}], ids=["reason", "no-reason"])
def test_the_refusal_says_the_gpu_once_and_the_hint_the_other_gpus(
    answering: Answering,  # noqa: F811 - the imported fixture
    answer: dict[str, Any],
    reason: dict[str, str],
) -> None:
    error = refusal(answering("driver", **answer, **reason))
    assert (error.node, error.kind, error.message) == ("gpu07", "driver", "GPU 3 is lost; nothing was changed")
    assert isinstance(error, LostGpuError)
    assert error.others == "0-2,4-7"
    hint_lost_gpus([error], 640.0)
    assert error.hint == "address the node's other GPUs alone, e.g. `factoryctl power set gpu07/0-2,4-7 --watts 640`."


def test_the_field_is_believed_over_the_words(answering: Answering) -> None:  # noqa: F811
    """Only an agent without the field is read by its wording: the field's GPUs win over the sentence's."""
    error = refusal(answering("driver", OLD, reason="gpu_lost", other_gpus=[0, 1]))
    assert isinstance(error, LostGpuError)
    assert (error.message, error.others) == (OLD, "0-1")


@pytest.mark.parametrize("other_gpus", [["0"], [True], [-1], "0-2", {"0": 1}, None])
def test_a_field_that_is_no_list_of_gpus_falls_back_to_the_words(
    answering: Answering,  # noqa: F811
    other_gpus: object,
) -> None:
    error = refusal(answering("driver", OLD, reason="gpu_lost", other_gpus=other_gpus))
    assert isinstance(error, LostGpuError)
    assert (error.message, error.others) == (SAID, "0-2,4-7")


@pytest.mark.parametrize(
    "answer",
    [
        {"message": "GPU 0 on gpu07 is lost; nothing was changed"},
        {"message": "GPU 0 is lost; nothing was changed"},
        {"message": "GPU 0 is lost; nothing was changed", "other_gpus": []},
    ],
    ids=["agent-before-last", "previous-agent", "this-agent"],
)
def test_a_node_of_one_gpu_has_no_other_gpus_to_name(
    answering: Answering,  # noqa: F811
    answer: dict[str, Any],
) -> None:
    error = refusal(answering("driver", **answer, reason="gpu_lost"))
    assert error.message == "GPU 0 is lost; nothing was changed"
    assert not isinstance(error, LostGpuError)
    assert error.hint is not None
    assert "a lost GPU answers nothing until it is reset" in error.hint


def test_another_lost_gpu_sentence_is_left_as_the_node_said_it(answering: Answering) -> None:  # noqa: F811
    """A GPU lost part-way keeps its sentence (what had changed): only the whole refusal is reworded."""
    for said in ("GPU 2 on gpu07 is lost; GPUs 0 and 1 had already changed", "GPU 2 is lost"):
        error = refusal(answering("driver", said, reason="gpu_lost"))
        assert error.message == said
        assert not isinstance(error, LostGpuError)


def test_the_agent_names_the_gpu_and_its_other_gpus_not_its_node(start_agent: Any) -> None:
    agent = start_agent(node="n47")
    assert agent.request("inject", fault="lost", gpus=[3])["ok"]
    reply = agent.request("set_power_limit", watts=300)
    assert reply["ok"] is False, reply
    assert reply["error"] == {
        "kind": "driver",
        "message": "GPU 3 is lost; nothing was changed",
        "reason": "gpu_lost",
        "other_gpus": [0, 1, 2, 4, 5, 6, 7],
    }
