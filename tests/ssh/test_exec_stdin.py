"""`factoryctl exec` forwards its standard input to every node's command, then EOF, like ssh and pdsh (real sshd)."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest
from cli_process import run_cli
from process_groups import assert_group_gone, interrupt_exec, start

from factoryctl.errors import ExitCode, NodeError
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_pool import SshPool
from factoryctl.transport.stdin_stream import CHUNK, StdinBroadcast

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)
#: Every node writes what it read into a fresh file under $1 (all nodes share this machine).
SAVE_STDIN = 'cat > "$(mktemp "$1/in.XXXXXX")"'


@pytest.fixture
def connection(ssh_node):
    pool = SshPool(OPTIONS)
    yield pool.connect(ssh_node())
    pool.close()


@pytest.fixture
def factory(tmp_path, sshd, known_hosts):
    nodes = "  n[01-03]: {host: 127.0.0.1}\n  ws: {transport: local}\n"
    return sshd.write_factory(tmp_path / "factory.yaml", known_hosts, nodes)


def test_binary_stdin_round_trips_through_cat(connection):
    data = os.urandom(3 << 20) + bytes(range(256)) + b"\r\n\x00"
    result = connection.run(["cat"], timeout=60, stdin=data)
    assert result.exit_code == 0
    assert result.stdout == data


def test_big_stdin_and_big_output_at_once_do_not_stall(connection):
    """The command writes while it reads: feeding and draining must interleave, or both windows fill."""
    data = os.urandom(12 << 20)
    script = "tee /dev/stderr | sha256sum"
    result = connection.run(["sh", "-c", script], timeout=60, stdin=data)
    assert result.exit_code == 0
    assert result.stderr == data
    import hashlib

    assert result.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_a_command_that_reads_no_stdin_is_not_an_error(connection):
    data = os.urandom(8 << 20)
    assert connection.run(["true"], timeout=60, stdin=data).exit_code == 0
    result = connection.run(["head", "-c", "3"], timeout=60, stdin=data)
    assert (result.exit_code, result.stdout) == (0, data[:3])


def test_stdin_nobody_reads_still_times_out(connection):
    started = time.monotonic()
    with pytest.raises(NodeError) as caught:
        connection.run(["sleep", "30"], timeout=1, stdin=os.urandom(16 << 20))
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 20


def test_every_node_gets_the_same_bytes(factory, tmp_path):
    """ssh nodes and a local node, through a real pipe; binary and a few MiB."""
    data = os.urandom(5 << 20) + b"\x00\xff\n"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    done = run_cli("--config", factory, "exec", "all", "--", "sh", "-c", SAVE_STDIN, "sh", str(inbox), stdin=data)
    assert done.returncode == 0, done.stderr
    received = [path.read_bytes() for path in inbox.iterdir()]
    assert len(received) == 4
    assert all(r == data for r in received)


def test_piped_text_is_gathered_like_any_output(cli, factory):
    r = cli("--config", factory, "exec", "n[01-03]", "--", "cat", stdin="hi\nthere\n")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "---------------\nn[01-03] (3)\n---------------\nhi\nthere\n"


def test_empty_stdin_is_eof_at_once(factory):
    done = run_cli("--config", factory, "exec", "all", "-o", "json", "--", "wc", "-c", stdin=b"")
    assert done.returncode == 0, done.stderr
    import json

    assert sorted(i["stdout"].strip() for i in json.loads(done.stdout)["items"]) == ["0"] * 4


def test_a_terminal_is_not_read(cli, factory):
    """On a terminal nothing is sent (the command gets EOF) and exec does not wait for typing."""
    r = cli("--config", factory, "exec", "n01", "--", "wc", "-c", stdin="typed\n", tty=True)
    assert (r.exit_code, r.stdout.splitlines()[-1].strip()) == (0, "0")


def test_no_stdin_option_sends_nothing(cli, factory):
    r = cli("--config", factory, "exec", "-n", "n01", "--", "wc", "-c", stdin="piped\n")
    assert (r.exit_code, r.stdout.splitlines()[-1].strip()) == (0, "0")


def test_a_pipe_that_never_closes_does_not_hold_up_commands_that_are_done(factory):
    """`ssh bastion 'factoryctl exec all -- uptime'` without -t: the pipe stays open, exec returns anyway."""
    read_end, write_end = os.pipe()  # open and silent for the whole test
    try:
        started = time.monotonic()
        proc = start("--config", factory, "exec", "-t", "60", "all", "--", "echo", "done", stdin=read_end)
        out, err = proc.communicate(timeout=50)
        assert proc.returncode == 0, err
        assert out.decode().splitlines() == ["---------------", "n[01-03],ws (4)", "---------------", "done"]
        assert time.monotonic() - started < 30  # well under the 60 s timeout: nothing waited for the pipe
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_slow_remote_reader_gets_every_byte_with_bounded_memory(ssh_node):
    """Two nodes, one reading slowly: both get everything; the reader never runs more than a window ahead."""
    data = os.urandom(6 << 20)
    read_end, write_end = os.pipe()
    window = 512 << 10
    broadcast = StdinBroadcast(read_end, window=window)
    slow_reader = (
        "import hashlib, sys, time\n"
        "h = hashlib.sha256()\n"
        "while True:\n"
        "    block = sys.stdin.buffer.read1(8192)\n"
        "    if not block: break\n"
        "    h.update(block); time.sleep(0.0005)\n"
        "print(h.hexdigest())\n"
    )
    commands = {"fast": ["sha256sum"], "slow": ["python3", "-c", slow_reader]}
    results: dict[str, bytes] = {}
    pool = SshPool(OPTIONS)
    try:
        feeds = {name: broadcast.feed(name) for name in commands}

        def run(name: str) -> None:
            feeds[name].start()
            connection = pool.connect(ssh_node(name))
            results[name] = connection.run(commands[name], timeout=120, stdin=feeds[name]).stdout

        def source() -> None:
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)

        threads = [threading.Thread(target=run, args=(name,)) for name in commands]
        threads.append(threading.Thread(target=source))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(150)
    finally:
        pool.close()
        os.close(read_end)
    digest = hashlib.sha256(data).hexdigest()
    assert {name: out.split()[0].decode() for name, out in results.items()} == {"fast": digest, "slow": digest}
    assert broadcast.peak <= window + CHUNK


def test_ctrl_c_signals_the_remote_command(factory, sshd, tmp_path):
    """Ctrl-C: exit 130 at once, and the node's command is stopped (INT, then HUP, to its process group).

    sshd delivers a `signal` request to the command's process group for ordinary users; it refuses it for root
    sessions ("session signalling requires privilege separation"), so for root the signals are sent with `kill` over
    another channel to the group the command reported, and no `signal` request is made.
    """
    log = sshd.root / "sshd.log"
    before = log.read_text(errors="replace").count("session_signal_req")
    # sshd runs on this machine: the "remote" processes and their group are here.
    returncode, err, group = interrupt_exec(factory, "n01", tmp_path / "pid", sleep_s=3)
    assert returncode == ExitCode.INTERRUPTED, err
    assert_group_gone(group, within=2.0)
    if os.geteuid() == 0:  # root: no request sshd would refuse
        assert log.read_text(errors="replace").count("session_signal_req") == before


def count_selects(monkeypatch) -> list[int]:
    """Count the waits (poll) this thread makes draining SSH commands from now on (a one-item list)."""
    import factoryctl.transport.ssh_channel as channel_module

    calls = [0]
    real_readable = channel_module.readable
    me = threading.current_thread()

    def counting(*args, **kwargs):
        if threading.current_thread() is me:
            calls[0] += 1
        return real_readable(*args, **kwargs)

    monkeypatch.setattr(channel_module, "readable", counting)
    return calls


def test_waiting_for_input_does_not_poll(connection, monkeypatch):
    """The command waits for input for a second: the drain sleeps in select until the input comes (woken by the
    broadcast), instead of looking again every few milliseconds."""
    calls = count_selects(monkeypatch)
    read_end, write_end = os.pipe()
    broadcast = StdinBroadcast(read_end)
    feed = broadcast.feed("n")
    feed.start()

    def late() -> None:
        os.write(write_end, b"a")
        time.sleep(1.5)
        os.write(write_end, b"b")

    thread = threading.Thread(target=late)
    thread.start()
    try:
        result = connection.run(["head", "-c", "2"], timeout=30, stdin=feed)
    finally:
        thread.join()
        broadcast.stop()
        os.close(read_end)
        os.close(write_end)
    assert result.stdout == b"ab"
    assert calls[0] < 20  # polling every 20 ms would be about 75


def test_a_command_that_closed_its_output_is_waited_for_without_spinning(connection, monkeypatch):
    """Output EOF leaves the channel readable for good; until the exit status comes the drain must sleep."""
    calls = count_selects(monkeypatch)
    result = connection.run(["sh", "-c", "exec >/dev/null 2>&1; sleep 1; exit 3"], timeout=30)
    assert result.exit_code == 3
    assert calls[0] < 20


def test_a_command_with_input_and_output_past_fd_setsize(connection):
    """A channel's descriptor numbered past 1024 (a large fleet) is waited on with poll: select refused it."""
    from high_fds import descriptors_past_fd_setsize

    data = os.urandom(1 << 20)
    with descriptors_past_fd_setsize():
        result = connection.run(["cat"], timeout=60, stdin=data)
    assert result.exit_code == 0
    assert result.stdout == data
