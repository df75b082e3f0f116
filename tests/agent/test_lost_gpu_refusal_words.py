"""A lost GPU's refusal names the GPU, not the node, and leaves the other GPUs to the hint, whichever agent said it.

It read `n47: GPU 3 on n47 is lost; nothing was changed (its other GPUs can be addressed alone: n47/0-2,4-7)`, then a
hint with the same `n47/0-2,4-7`; folded over 4 nodes, `n[44-47] (4): GPU 3 on n[44-47] is lost ...`. An agent of
the previous version still sends that sentence: it reads as the new one's. Fake agents answer with each wording.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_session_error_kinds import Answering, answering, refusal  # noqa: F401 - the fixture, as a parameter

from factoryctl.cli.power_limits import hint_lost_gpus
from factoryctl.transport.hints import LostGpuError

OLD = "GPU 3 on gpu07 is lost; nothing was changed (its other GPUs can be addressed alone: gpu07/0-2,4-7)"
NEW = "GPU 3 is lost; nothing was changed (its other GPUs can be addressed alone: 0-2,4-7)"


@pytest.mark.parametrize("said", [OLD, NEW], ids=["previous-agent", "this-agent"])
@pytest.mark.parametrize("reason", [{"reason": "gpu_lost"}, {}], ids=["reason", "no-reason"])
def test_the_refusal_says_the_gpu_once_and_the_hint_the_other_gpus(
    answering: Answering,  # noqa: F811 - the imported fixture
    said: str,
    reason: dict[str, str],
) -> None:
    error = refusal(answering("driver", said, **reason))
    assert (error.node, error.kind, error.message) == ("gpu07", "driver", "GPU 3 is lost; nothing was changed")
    assert isinstance(error, LostGpuError)
    assert error.others == "0-2,4-7"
    hint_lost_gpus([error], 640.0)
    assert error.hint == "address the node's other GPUs alone, e.g. `factoryctl power set gpu07/0-2,4-7 --watts 640`."


def test_a_node_of_one_gpu_has_no_other_gpus_to_name(answering: Answering) -> None:  # noqa: F811
    for said in ("GPU 0 on gpu07 is lost; nothing was changed", "GPU 0 is lost; nothing was changed"):
        error = refusal(answering("driver", said, reason="gpu_lost"))
        assert error.message == "GPU 0 is lost; nothing was changed"
        assert not isinstance(error, LostGpuError)
        assert error.hint is not None
        assert "a lost GPU answers nothing until it is reset" in error.hint


def test_another_lost_gpu_sentence_is_left_as_the_node_said_it(answering: Answering) -> None:  # noqa: F811
    """A GPU lost part-way keeps its sentence (what had changed): only the whole refusal is reworded."""
    said = "GPU 2 on gpu07 is lost; GPUs 0 and 1 had already changed"
    error = refusal(answering("driver", said, reason="gpu_lost"))
    assert error.message == said
    assert not isinstance(error, LostGpuError)


def test_the_agent_names_the_gpu_and_its_other_gpus_not_its_node(start_agent: Any) -> None:
    agent = start_agent(node="n47")
    assert agent.request("inject", fault="lost", gpus=[3])["ok"]
    reply = agent.request("set_power_limit", watts=300)
    assert reply["ok"] is False, reply
    said = reply["error"]["message"]
    assert said == "GPU 3 is lost; nothing was changed (its other GPUs can be addressed alone: 0-2,4-7)"
    assert "n47" not in said
