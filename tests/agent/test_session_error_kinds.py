"""What the session makes of an agent's error reply: a documented kind, and a hint that names the node.

The agent answers `usage`, `driver`, `agent` or `unsupported` (docs/agent-protocol.md); a listing's `errors` only
know the kinds of docs/cli.md, so a GPU without the capability (`unsupported`) is the driver's failure with a hint
about the GPU, never an agent to diagnose, and every hint names the node, never a literal TARGET.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator

import pytest

from factoryctl.errors import ExitCode, NodeError
from factoryctl.transport.session import AgentSession

Answering = Callable[..., AgentSession]


@pytest.fixture
def answering() -> Iterator[Answering]:
    """A session with a fake agent on node `gpu07` that answers every request with the error given.

    `answering(kind, message)` sends no `reason`, as an agent from before it; `reason=...` sends that one, and any
    other keyword its field too (`other_gpus=[0, 1]`).
    """
    started: list[subprocess.Popen[bytes]] = []

    def start(kind: str, message: str, **fields: object) -> AgentSession:
        script = f"""
            import json, sys
            print(json.dumps({{"type": "hello", "protocol": 1, "agent_version": "9", "backend": "sim"}}))
            for line in sys.stdin:
                request = json.loads(line)
                error = {{"kind": {kind!r}, "message": {message!r}, **{fields!r}}}
                print(json.dumps({{"id": request["id"], "ok": False, "error": error}}), flush=True)
        """
        proc = subprocess.Popen(
            [sys.executable, "-u", "-c", textwrap.dedent(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        started.append(proc)
        assert proc.stdin is not None
        assert proc.stdout is not None
        session = AgentSession("gpu07", proc.stdin, proc.stdout, on_close=proc.kill)
        session.hello_info = session.wait_hello(10)
        return session

    yield start
    for proc in started:
        proc.kill()
        proc.wait(10)
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()


def refusal(session: AgentSession) -> NodeError:
    with pytest.raises(NodeError) as caught:
        session.set_power_limit(300.0)
    return caught.value


@pytest.mark.parametrize(
    "message",
    [
        "GPU 0 on gpu07 does not support setting a power limit",  # an agent that named its node
        "GPU 0 on gpu07 does not report its power limit range (not supported)",
        "GPU 0 does not support setting a power limit",  # this one: the client names the node
        "GPU 0 does not report its power limit range (not supported)",
    ],
)
def test_a_gpu_without_the_capability_is_the_drivers_failure_with_a_hint_about_the_gpu(
    answering: Answering, message: str
) -> None:
    error = refusal(answering("unsupported", message))
    assert (error.kind, error.exit_code) == ("driver", ExitCode.FAILURE)
    assert (error.node, error.message) == ("gpu07", message)
    assert error.hint is not None
    assert "`factoryctl gpus gpu07 -o json`" in error.hint
    assert "board or driver cannot do this" in error.hint
    assert "TARGET" not in error.hint
    assert "nodes check" not in error.hint


def test_the_nvidia_smi_bridges_word_for_it_gets_the_same_hint(answering: Answering) -> None:
    error = refusal(answering("driver", "GPU 1 does not report its power-limit range"))
    assert error.kind == "driver"
    assert error.hint is not None
    assert "`factoryctl gpus gpu07 -o json`" in error.hint


def test_an_agent_failure_hints_nodes_check_for_this_node(answering: Answering) -> None:
    error = refusal(answering("agent", "set_power_limit failed: KeyError('x')"))
    assert error.kind == "agent"
    assert error.hint == "run `factoryctl nodes check gpu07` to diagnose the agent."


@pytest.mark.parametrize(
    "message",
    [
        "setting a power limit on gpu07 needs root (GPU 0: insufficient permissions)",
        "setting a power limit needs root (GPU 0: insufficient permissions)",
        "nvidia-smi failed: Failed to set power management limit for GPU 00000000:18:00.0: Insufficient Permissions",
    ],
)
def test_a_refusal_to_a_non_root_user_hints_that_root_is_needed(answering: Answering, message: str) -> None:
    error = refusal(answering("driver", message))
    assert error.kind == "driver"
    assert error.hint is not None
    assert "needs root on the node" in error.hint
    assert "state_dir" not in error.hint


#: A phrase of each reason's hint (factoryctl.transport.session), and a message an agent could word it with.
REASON_HINTS = {
    "needs_root": "needs root on the node",
    "unsupported": "board or driver cannot do this",
    "lock_busy": "another factoryctl (a cron job, a colleague, a dashboard) was changing this node's power limits",
    "lock_unusable": "the node's power-limits lock file cannot be used",
    "gpu_lost": "a lost GPU answers nothing until it is reset",
}
GENERAL_HINT = "check that the node's state_dir"  # a simulated node's driver: its state directory


@pytest.mark.parametrize("reason", sorted(REASON_HINTS))
def test_the_hint_follows_the_reason_whatever_the_message_says(answering: Answering, reason: str) -> None:
    error = refusal(answering("driver", "the node declined, in words no hint knows", reason=reason))
    assert error.kind == "driver"
    assert (error.node, error.message) == ("gpu07", "the node declined, in words no hint knows")
    assert error.hint is not None
    assert REASON_HINTS[reason] in error.hint


@pytest.mark.parametrize("reason", ["no_driver", "driver_failed", "a_reason_of_a_newer_agent"])
def test_a_reason_overrides_a_misleading_message(answering: Answering, reason: str) -> None:
    """A reason is believed over the wording: this message reads like a lost GPU, a lock and root all at once."""
    message = "GPU 0 is lost, another change of its power limits needs root"
    error = refusal(answering("driver", message, reason=reason))
    assert error.hint is not None
    assert error.hint.startswith(GENERAL_HINT)


def test_an_unsupported_error_of_an_unknown_reason_keeps_the_hint_about_the_gpu(answering: Answering) -> None:
    error = refusal(answering("unsupported", "no such knob", reason="a_reason_of_a_newer_agent"))
    assert (error.kind, error.hint is not None) == ("driver", True)
    assert error.hint is not None
    assert REASON_HINTS["unsupported"] in error.hint


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            "another change of its power limits was still running after 5 s (it holds /x); nothing was changed",
            "lock_busy",
        ),
        ("cannot lock its power limits: /x is a symbolic link (remove it); nothing was changed", "lock_unusable"),
        ("GPU 3 on gpu07 is lost; nothing was changed", "gpu_lost"),
        ("GPU 2 on gpu07 is lost", "gpu_lost"),
        ("GPU 2 is lost", "gpu_lost"),
        ("setting a power limit on gpu07 needs root (GPU 0: insufficient permissions)", "needs_root"),
        ("setting a power limit needs root (GPU 0: insufficient permissions)", "needs_root"),
        ("GPU 1 does not report its power-limit range", "unsupported"),
        ("GPU 0 on gpu07 does not support setting a power limit", "unsupported"),
        ("GPU 0 does not support setting a power limit", "unsupported"),
    ],
)
def test_an_error_without_a_reason_still_gets_the_hint_its_wording_meant(
    answering: Answering, message: str, reason: str
) -> None:
    """An agent from before `reason` (docs/agent-protocol.md, Errors): the hint read from its message, as before."""
    error = refusal(answering("driver", message))
    assert error.hint is not None
    assert REASON_HINTS[reason] in error.hint


def test_a_driver_error_without_a_reason_or_known_wording_gets_the_general_hint(answering: Answering) -> None:
    error = refusal(answering("driver", "the simulated driver is not available: its state is unreadable"))
    assert error.hint is not None
    assert error.hint.startswith(GENERAL_HINT)
