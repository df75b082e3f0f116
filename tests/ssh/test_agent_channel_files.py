"""The agent session's streams over SSH leave nothing for interpreter exit to finalize.

A node whose agent could not start (no Python: the nvidia-smi fallback) next to a real node without NVML printed
"Exception ignored in: <function BufferedFile.__del__ ...> ValueError: I/O operation on closed file" twice after
the right error: the failed session, kept alive by its error's traceback, held paramiko ChannelFiles whose
`__del__` ran at exit after their buffers were gone. The session's streams are no longer paramiko files.
"""

from __future__ import annotations

import gc

import pytest
from cli_process import run_cli_text
from paramiko.file import BufferedFile
from paramiko.sftp_file import SFTPFile

from factoryctl.errors import NodeError
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_node import SshTransport

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)


def _channel_files(transport: SshTransport) -> list[BufferedFile]:
    """paramiko files still alive on channels of this transport's connection (SFTP's own are closed by it)."""
    gc.collect()
    mine = transport.connection.transport
    return [
        found
        for found in gc.get_objects()
        if isinstance(found, BufferedFile)
        and not isinstance(found, SFTPFile)
        and getattr(getattr(found, "channel", None), "transport", None) is mine
    ]


def test_a_failed_agent_start_keeps_no_paramiko_file_alive(sshd_factory, tmp_path):
    server = sshd_factory()  # its own PATH: no nvidia-smi
    spec = server.node("bare", server.write_known_hosts(tmp_path / "kh"), python="/nonexistent/python3")
    transport = SshTransport.open(spec, "lab", OPTIONS)
    try:
        with pytest.raises(NodeError) as caught:
            transport.start_agent(60)
        assert caught.value.kind == "driver"
        assert _channel_files(transport) == []  # while the error (and its traceback) is still held
    finally:
        transport.close()


def test_the_cli_prints_no_finalizer_noise(sshd_factory, tmp_path):
    server = sshd_factory()
    nodes = (
        "  sp: {host: 127.0.0.1, sim: h100-sxm, gpus: 1, python: /nonexistent/python3}\n"
        "  real: {host: 127.0.0.1, gpus: 8}\n"
    )
    config = server.write_factory(tmp_path / "factory.yaml", server.write_known_hosts(tmp_path / "kh"), nodes)
    result = run_cli_text("--config", config, "nodes", "all")
    assert result.returncode != 0
    assert "factoryctl: sp: no usable /nonexistent/python3" in result.stderr
    assert "Exception ignored" not in result.stderr
    assert "Traceback" not in result.stderr
