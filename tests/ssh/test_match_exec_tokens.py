"""A `Match exec` command's tokens are put in once, as ssh's percent_expand puts them (ssh_match_exec.py).

Found in review (session 23): paramiko's `_tokenize` replaces one token after another, so what `%h` put in was
expanded again by the tokens after it: the node `fe80::1%u` (an IPv6 address and its zone, which factory.yaml
accepts) reached the command as `fe80::1root`. `%%` stayed two characters where ssh writes one. The commands run
for real, through the shell, and write what they were given to a file.
"""

from __future__ import annotations

import getpass
from pathlib import Path

from user_ssh_config import write_user_ssh_config

from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.ssh_config import resolve


def _given(home: Path, tmp_path: Path, command: str, host: str, before: str = "") -> str:
    """What the `Match exec` command `command` (its `{log}` the file it writes) wrote, resolving node n1 at `host`."""
    log = tmp_path / "given"
    write_user_ssh_config(home, f'{before}Match exec "{command.format(log=log)}"\n  Port 2222\n')
    assert resolve(NodeSpec("n1", host)).port == 2222
    return log.read_text()


def test_the_host_put_in_for_h_is_not_expanded_again(isolated_home: Path, tmp_path: Path) -> None:
    assert _given(isolated_home, tmp_path, "echo %h %n > {log}", "fe80::1%u") == "fe80::1%u fe80::1%u\n"


def test_a_token_after_h_is_still_expanded(isolated_home: Path, tmp_path: Path) -> None:
    given = _given(isolated_home, tmp_path, "echo %h:%u:%r:%p > {log}", "fe80::1%r")
    assert given == f"fe80::1%r:{getpass.getuser()}:{getpass.getuser()}:22\n"


def test_a_double_percent_is_one_percent(isolated_home: Path, tmp_path: Path) -> None:
    assert _given(isolated_home, tmp_path, "echo 100%% %%h > {log}", "a1") == "100% %h\n"


def test_hostname_set_before_it_gives_h_with_its_own_h_expanded(isolated_home: Path, tmp_path: Path) -> None:
    before = "Host a1\n  HostName %h.example\n"
    assert _given(isolated_home, tmp_path, "echo %h > {log}", "a1", before) == "a1.example\n"
