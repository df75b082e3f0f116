"""`exec`'s TARGET is checked as text whatever the remote command's words look like.

The argv text check parsed `exec`'s words with click's plain parser, not as exec parses them (a `--` in front of the
remote command's first word, `exec_args.separated`): a remote word exec lacks as an option (`exec n01 echo -rX`)
left every word unparsed, so a TARGET of bytes that are not UTF-8 was not refused (the command went on to load the
config and run), and one read otherwise as UTF-8 (a Latin-1 locale) was not rewritten to the text it stands for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_process import CLI_ARGV

from factoryctl.cli.arguments import check_text_arguments
from factoryctl.errors import UsageError

#: Remote commands with words that look like options exec lacks, after exec options or an explicit `--`, or none.
REMOTE = (
    ["echo", "-rX"],
    ["grep", "-n", "foo", "--colour=never", "f"],
    ["-t", "5", "df", "-h", "/"],
    ["--", "echo", "-rX"],
    ["uptime"],
)


@pytest.mark.parametrize("command", REMOTE)
def test_a_target_that_is_not_utf8_is_refused_whatever_the_remote_words(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "utf-8")
    target = b"n\xff1".decode("utf-8", "surrogateescape")  # as Python reads argv in a UTF-8 locale
    with pytest.raises(UsageError) as refused:
        check_text_arguments(["exec", target, *command])
    assert refused.value.message == "TARGET must be UTF-8 text, and 'n\\xff1' is not"


@pytest.mark.parametrize("command", REMOTE)
def test_a_target_read_otherwise_is_rewritten_and_the_remote_words_keep_their_bytes(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "iso8859-1")
    read = "été".encode().decode("iso8859-1")  # `été` in UTF-8, as a Latin-1 locale reads it
    args = ["exec", read, *command, read, "-" + read]
    check_text_arguments(args)
    assert args == ["exec", "été", *command, read, "-" + read]


def test_the_console_refuses_the_target_before_it_reads_any_config(tmp_path: Path) -> None:
    """End to end: exit 2 and the sentence, not `no factory.yaml` (exit 3) as when the check was skipped."""
    env = {**os.environ, "LC_ALL": "C.UTF-8", "HOME": str(tmp_path)}
    done = subprocess.run(
        [*CLI_ARGV, "exec", b"n\xff1", "echo", "-rX"], env=env, cwd=tmp_path, capture_output=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(b"factoryctl: TARGET must be UTF-8 text, and 'n\\xff1' is not.\n")
