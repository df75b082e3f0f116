"""A node's `host` is a host name, an alias or an address: never text a shell would read as a command.

~/.ssh/config's `Match exec` commands get the host substituted (%h, %n) and run in a shell (paramiko's lookup, as
ssh's): `host: "127.0.0.1$(touch /tmp/x)"` ran `touch`. OpenSSH 9.6 refuses shell characters in a host name given on
its command line; factory.yaml refuses all but letters, digits, `.`, `-`, `_` and `:`, as a config error (exit 3).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factoryctl.config import parse_config
from factoryctl.errors import ConfigError, ExitCode


def _host(host: str) -> str:
    return parse_config(f"nodes:\n  n1: {{host: {json.dumps(host)}}}\n", Path("f.yaml")).nodes["n1"].host


@pytest.mark.parametrize(
    "host",
    [
        "gpu01",
        "10.0.0.11",
        "::1",
        "fe80::1",
        "fe80::1%eth0",
        "2001:db8::2:1",
        "gpu-01.lab.example.",
        "my_alias",
        "Gpu01",
    ],
)
def test_host_names_aliases_and_addresses_are_taken(host):
    assert _host(host) == host


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1$(touch /tmp/x)",
        "a1`id`",
        "a1;id",
        "a1|id",
        "a1&&id",
        "a1 b",
        "a1\nid",
        "'a1'",
        "-oProxyCommand=id",
        "gpü01",
        "a1>x",
        "a1\\",
        "fe80::1%",
        "fe80::1%eth0;id",
        "a1%$(id)",
    ],
)
def test_anything_a_shell_would_read_otherwise_is_a_config_error(host):
    with pytest.raises(ConfigError) as caught:
        _host(host)
    error = caught.value
    assert error.exit_code == ExitCode.CONFIG
    assert error.message.startswith("f.yaml:2:")
    assert "`nodes.n1.host`: must be a host name or an address (letters, digits, '.', '-', '_' and ':'" in error.message
    assert f"not {host!r}: a `Match exec` in ~/.ssh/config would pass it to a shell command." in error.message
    assert error.hint is not None
    assert "Host name or address" in error.hint


def test_an_ipv6_address_in_brackets_says_to_drop_them():
    with pytest.raises(ConfigError) as caught:
        _host("[::1]")
    assert caught.value.message.endswith(
        "`nodes.n1.host`: an IPv6 address is written without brackets: '::1', not '[::1]'."
    )


def test_a_long_host_is_shown_cut():
    with pytest.raises(ConfigError) as caught:
        _host("a;" * 1000)
    assert f"not {('a;' * 40)!r}...:" in caught.value.message
    assert len(caught.value.message) < 400
