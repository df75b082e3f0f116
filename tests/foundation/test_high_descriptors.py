"""Descriptors numbered past FD_SETSIZE (1024) work: a fleet of a few hundred nodes gets there.

select(2) refuses them (`ValueError: filedescriptor out of range in select()`), and the open-file limit is raised
for large fleets (transport/host_limits.py), so every wait on a descriptor uses poll. The test fills the low
numbers with /dev/null so that the transport's own pipes are numbered above 1024.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator

import pytest
from high_fds import descriptors_past_fd_setsize

from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.fanout import as_node_error
from factoryctl.transport.host_limits import local_limit_error, raise_open_file_limit
from factoryctl.transport.local import LocalTransport
from factoryctl.transport.polling import readable, writable


@pytest.fixture
def low_numbers_taken() -> Iterator[None]:
    """Hold every descriptor below 1,100, so new ones are numbered past 1024."""
    with descriptors_past_fd_setsize():
        yield


@pytest.mark.usefixtures("low_numbers_taken")
def test_poll_waits_on_a_descriptor_past_fd_setsize() -> None:
    read_end, write_end = os.pipe()
    try:
        assert read_end > 1024
        assert readable([read_end], 0) == []
        assert writable(write_end, 0)
        os.write(write_end, b"x")
        assert readable([read_end], 5) == [read_end]
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.usefixtures("low_numbers_taken")
def test_a_local_command_with_input_and_output_past_fd_setsize(tmp_path) -> None:
    transport = LocalTransport(NodeSpec(name="ws", host="ws", transport="local"), "lab", tmp_path)
    data = os.urandom(1 << 20)
    result = transport.run(["cat"], 60, stdin=data)
    assert result.exit_code == 0
    assert result.stdout == data


def test_the_open_file_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        import factoryctl.transport.host_limits as host_limits

        host_limits._raised = False
        raise_open_file_limit()
        raised, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert raised == hard or (hard == resource.RLIM_INFINITY and raised > lowered)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_running_out_of_files_or_threads_is_this_machines_limit_not_the_nodes() -> None:
    files = local_limit_error("gpu01", OSError(24, "Too many open files"))
    assert isinstance(files, NodeError)
    assert (files.kind, files.exit_code) == ("local", 1)
    assert "no file descriptor left" in files.message
    assert "ulimit -n is " in files.message
    assert "LimitNOFILE=" in (files.hint or "")
    threads = local_limit_error("gpu01", RuntimeError("can't start new thread"))
    assert threads is not None
    assert "cannot start another thread" in threads.message
    assert "TasksMax=" in (threads.hint or "")
    assert local_limit_error("gpu01", OSError(111, "Connection refused")) is None
    assert local_limit_error("gpu01", RuntimeError("something else")) is None


def test_a_local_node_that_cannot_start_for_want_of_files_is_this_machines_fault(tmp_path) -> None:
    """Every descriptor in use: a local command or agent cannot start, and says it is this machine's limit."""
    import errno

    from factoryctl.transport.bundle import agent_zipapp

    agent_zipapp()  # built (and its modules imported) while files can still be opened
    transport = LocalTransport(NodeSpec(name="ws", host="ws", transport="local"), "lab", tmp_path)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    held: list[int] = []
    try:
        with pytest.raises(OSError) as full:
            _open_until_refused(held)
        assert full.value.errno == errno.EMFILE
        with pytest.raises(NodeError) as caught:
            transport.run(["true"], 30)
        assert (caught.value.kind, caught.value.exit_code) == ("local", 1)
        assert "no file descriptor left" in caught.value.message
        with pytest.raises(Exception) as failed:  # whatever runs out first, as the links see it
            transport.start_agent(30)
        judged = as_node_error("ws", failed.value)
        assert (judged.kind, judged.exit_code) == ("local", 1), judged.message
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _open_until_refused(held: list[int]) -> None:
    """Open /dev/null into `held` until the process has no descriptor left (raises the OSError)."""
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
