"""`-c` with its value in the same word (`-cFILE`, `-qcFILE`) is told apart from `-c FILE` before the CLI parses.

A daemon's SIGHUP while it starts is held only when its command line is told to be a daemon's (cli/app.py): a file
name ending in `c` written against `-c` (`-cabc/lab.yaml.c controller run`) read `controller` as the file, so a
`systemctl reload` at start killed the controller with 129.
"""

from __future__ import annotations

import pytest

from factoryctl.cli.daemon_hangup import runs_as_daemon


@pytest.mark.parametrize(
    ("args", "daemon"),
    [
        (["-cabc/lab.yaml.c", "controller", "run"], True),
        (["-c/srv/abc", "controller", "run"], True),
        (["-qcf.yaml", "metrics", "serve"], True),
        (["-qc", "f.yaml", "metrics", "serve"], True),
        (["-cf.yaml", "controller", "status"], False),
    ],
)
def test_a_config_value_in_the_same_word_is_not_the_next_one(args: list[str], daemon: bool) -> None:
    assert runs_as_daemon(args) is daemon
