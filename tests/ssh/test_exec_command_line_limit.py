"""A command line longer than an SSH server takes is refused before it is sent, as a usage error (exit 2).

OpenSSH's sshd drops the whole connection on a packet over 256 KiB ("Bad packet length 1200240" in its log), and
exec reported "connection lost while the command ran / check that sshd still runs" (exit 4). The bound is the
longest exec request that fits in such a packet whatever the padding; one byte more is refused, in bytes sent.
"""

from __future__ import annotations

import pytest

from factoryctl.errors import ExitCode, UsageError
from factoryctl.transport.quoting import MAX_COMMAND_LINE, check_argv, command_line, group_token


def _factory(tmp_path, sshd, known_hosts):
    factory = tmp_path / "factory.yaml"
    factory.write_text(
        f"name: lab\nssh: {{connect_timeout_s: 30, known_hosts: {known_hosts}, port: {sshd.port}, "
        f"user: {sshd.user}, identity_file: {sshd.user_key}}}\nnodes:\n  n1: {{host: 127.0.0.1}}\n"
    )
    return factory


def test_exec_with_a_command_line_over_the_packet_limit_is_a_usage_error(
    cli, isolated_home, sshd, known_hosts, tmp_path
):
    words = ["sh", "-c", 'echo "$#"', "sh", *(["a" * 120_000] * 10)]
    result = cli("--config", str(_factory(tmp_path, sshd, known_hosts)), "exec", "n1", "--", *words)
    assert result.exit_code == ExitCode.USAGE, result.stderr
    size = len(command_line(words, group_token(), login_output=True).encode())
    assert result.stderr.splitlines() == [
        f"factoryctl: the command line is {size:,} bytes; an SSH server takes at most 262,106 (OpenSSH's 256 KiB "
        "packet limit).",
        "hint: pass long data on standard input instead: `factoryctl exec all -- sh -c 'cat > /tmp/data' < file`.",
    ]
    assert "connection lost" not in result.stderr


def test_the_command_line_is_refused_before_any_connection(cli, tmp_path):
    """Checked once, before connecting: each SSH node connected first and was refused after (nothing sent)."""
    factory = tmp_path / "factory.yaml"
    factory.write_text("name: lab\nssh: {port: 1}\nnodes:\n  n[1-3]: {host: 127.0.0.1}\n")  # nothing listens
    result = cli("--config", str(factory), "exec", "all", "--", "echo", "a" * 300_000)
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert result.stderr.startswith("factoryctl: the command line is ")
    assert "refused" not in result.stderr  # no connection was tried


def test_a_long_command_line_on_local_nodes_is_not_an_ssh_servers_business(cli, tmp_path):
    factory = tmp_path / "factory.yaml"
    factory.write_text("name: lab\nnodes:\n  w1: {transport: local}\n")
    result = cli("--config", str(factory), "exec", "w1", "--", "sh", "-c", 'echo "${#1}"', "sh", "a" * 100_000)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().endswith("100000")


def test_the_longest_command_line_allowed_reaches_the_node(connection):
    """Sent whole, its packet taken by sshd: Linux's shell then refuses a 256 KiB argument itself (exit 1 or 126)."""
    longest = "true #" + "a" * (MAX_COMMAND_LINE - 6)
    result = connection.run_shell(longest, timeout=30)
    assert result.exit_code != 0
    assert b"Argument list too long" in result.stderr
    with pytest.raises(UsageError) as caught:
        connection.run_shell(longest + "a", timeout=30)
    assert caught.value.message.startswith(f"the command line is {MAX_COMMAND_LINE + 1:,} bytes;")
    assert connection.run(["echo", "still", "connected"], timeout=30).stdout == b"still connected\n"


def test_the_check_counts_bytes_of_the_wrapped_line():
    token = group_token()
    wrapper = len(command_line([""], token, login_output=True).encode()) - len("''")
    fits = "é" * ((MAX_COMMAND_LINE - wrapper) // 2 - 2)  # quoted: 'é...é', 2 bytes each
    check_argv([fits], login_output=True)
    with pytest.raises(UsageError):
        check_argv([fits + "éé"], login_output=True)
    with pytest.raises(UsageError):  # the marker `echo` of factoryctl's own commands counts too
        check_argv([fits], login_output=False)
    assert MAX_COMMAND_LINE == 256 * 1024 - 38
