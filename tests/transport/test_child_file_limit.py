"""A local node's commands and agent get the user's open-file soft limit, not the one raised for a large fleet.

The controller raises its own soft limit to the hard one when its first link starts, and a one-shot command when it
reaches more than 32 nodes at once (transport/host_limits.py); its
children inherited it, so a node's program that uses select() could be handed descriptors past 1024, and none saw
the limit its user had set.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import factoryctl.transport.host_limits as host_limits
from factoryctl.model.inventory import NodeSpec, SimSpec
from factoryctl.transport.local import LocalTransport

#: The user's soft limit in these tests (systemd's default), below the machine's hard limit.
USER_SOFT = 1024
PRINT_SOFT_LIMIT = "import resource; print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])"


def as_a_fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget what host_limits remembers of this process (read the user's limit, raised it), as at its start.

    host_limits has no public way to forget: its module state is set back directly, each name checked to exist
    (`raising`), so a renamed one fails here instead of leaving the state of an earlier test in place.
    """
    for name, fresh in (("_raised", False), ("_user_read", False), ("_user_limits", None)):
        monkeypatch.setattr(host_limits, name, fresh, raising=True)


@pytest.fixture
def raised_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """This process started with USER_SOFT and then raised it for a fleet; yields the raised soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard > USER_SOFT, "the machine's hard limit leaves nothing to raise"
    resource.setrlimit(resource.RLIMIT_NOFILE, (USER_SOFT, hard))
    as_a_fresh_process(monkeypatch)
    try:
        host_limits.raise_open_file_limit()
        raised = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert raised > USER_SOFT
        yield raised
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def local_node(sim: SimSpec | None = None) -> NodeSpec:
    return NodeSpec(name="ws", host="ws", transport="local", sim=sim)


def test_a_local_command_sees_the_users_limit_while_ours_is_raised(raised_limit: int, tmp_path: Path) -> None:
    transport = LocalTransport(local_node(), "lab", tmp_path)
    result = transport.run([sys.executable, "-c", PRINT_SOFT_LIMIT], 30)
    assert (result.exit_code, result.stdout) == (0, f"{USER_SOFT}\n".encode())
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised_limit


def test_a_local_agent_sees_the_users_limit_in_its_own_process(raised_limit: int, tmp_path: Path) -> None:
    """The agent (and the ranks it launches) run with the user's limit, in the process the transport started."""
    transport = LocalTransport(local_node(SimSpec(gpus=1)), "lab", tmp_path)
    session = transport.start_agent(60)  # after its hello: the agent itself runs, not the shell before it
    try:
        ((agent, _),) = transport._agents
        assert resource.prlimit(agent.pid, resource.RLIMIT_NOFILE)[0] == USER_SOFT
    finally:
        session.close()
        transport.close()


@pytest.mark.usefixtures("raised_limit")
def test_arguments_reach_the_command_as_given_and_a_missing_one_fails_as_before(tmp_path: Path) -> None:
    transport = LocalTransport(local_node(), "lab", tmp_path)
    words = ["a b", "$HOME", '"q"', "*", "-n", ""]
    result = transport.run(["printf", "[%s]\\n", *words], 30)
    assert result.stdout.decode().splitlines() == [f"[{word}]" for word in words]
    missing = transport.run(["no-such-command-here", "x"], 30)
    assert (missing.exit_code, missing.stderr) == (127, b"no-such-command-here: command not found\n")  # as bash


@pytest.mark.usefixtures("raised_limit")
def test_the_environment_reaches_the_command_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Names that are no shell identifiers too: started through dash, `MY-TOKEN` was dropped on the way."""
    monkeypatch.setenv("MY-TOKEN", "1")
    monkeypatch.setenv("app.mode", "x y")
    transport = LocalTransport(local_node(), "lab", tmp_path)
    result = transport.run(["env"], 30)
    assert {"MY-TOKEN=1", "app.mode=x y"} <= set(result.stdout.decode().splitlines())


def test_before_any_raise_a_command_is_started_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small fleets pay nothing: no wrapper while the limit is the user's own, though a raise is possible."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (USER_SOFT, hard))
    as_a_fresh_process(monkeypatch)
    try:
        assert host_limits.with_user_file_limit(["true", "x"]) == ["true", "x"]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("raised_limit")
def test_a_program_that_cannot_run_fails_as_an_unwrapped_one_does(tmp_path: Path) -> None:
    script = tmp_path / "no-shebang"
    script.write_bytes(b"\x7fELFgarbage")
    script.chmod(0o755)
    transport = LocalTransport(local_node(), "lab", tmp_path)
    result = transport.run([str(script)], 30)
    assert (result.exit_code, result.stderr) == (126, f"{script}: Exec format error\n".encode())


@pytest.mark.parametrize(("program", "status"), [("/etc/passwd", 126), ("/no/such/program", 127)])
def test_a_wrapped_command_that_cannot_run_fails_as_a_shell_says(
    raised_limit: int, tmp_path: Path, program: str, status: int
) -> None:
    """Started through the limit-restoring wrapper, a file found but not runnable is 126, a missing one 127 (as
    unwrapped, and as bash on an SSH node): the wrapper said 127 for both."""
    transport = LocalTransport(local_node(), "lab", tmp_path)
    result = transport.run([program], 30)
    assert result.exit_code == status, result.stderr
