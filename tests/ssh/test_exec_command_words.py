"""From the remote command's first word on, every word is the command's, as with ssh and pdsh; on either transport.

click used to read each word that looks like an option as exec's own, wherever it stood: `grep -n` lost its `-n`
(taken as --no-stdin), `echo -t 5` printed an empty line, `df -h` printed exec's help, `tail -n 1 f` failed and
`echo hi -- -t 5` lost the node's `--`. exec's own options still go before the command's first word, with or
without `--` (docs/ssh.md).
"""

from __future__ import annotations

import pytest
from exec_fleets import Fleet, fleet  # noqa: F401 - the fixture

GATHERED = "---------------\nn[01-02] (2)\n---------------\n"


@pytest.mark.parametrize(
    ("words", "printed"),
    [
        (["grep", "-n", "foo", "{file}"], "1:foo\n2:bar foo\n"),
        (["echo", "-t", "5"], "-t 5\n"),
        (["printf", "%s|", "-h", "/"], "-h|/|\n"),  # `df -h /`: was exec's own help
        (["tail", "-n", "1", "{file}"], "bar foo\n"),
        (["echo", "hi", "--", "-t", "5"], "hi -- -t 5\n"),
        (["echo", "--lines", "-L", "--", "--timeout=1"], "--lines -L -- --timeout=1\n"),
    ],
)
def test_the_commands_options_stay_the_commands(cli, fleet: Fleet, tmp_path, words, printed):  # noqa: F811
    text = tmp_path / "f"
    text.write_text("foo\nbar foo\n")
    argv = [word.replace("{file}", str(text)) for word in words]
    r = cli("--config", fleet.config, "exec", "all", *argv)
    assert (r.exit_code, r.stderr) == (0, "")
    assert r.stdout == GATHERED + printed


@pytest.mark.parametrize(
    "before",
    [
        ["-t", "5", "-L"],
        ["-t", "5", "-L", "--"],
        ["--timeout=5", "--lines", "--"],
        ["-Lt5"],
        ["-Lt", "5", "-n"],
    ],
)
def test_execs_options_still_go_before_the_command(cli, fleet: Fleet, before):  # noqa: F811
    r = cli("--config", fleet.config, "exec", "all", *before, "echo", "up", "-L")
    assert (r.exit_code, r.stderr) == (0, "")
    assert sorted(r.stdout.splitlines()) == ["n01: up -L", "n02: up -L"]  # --lines: exec's; the last -L: echo's


def test_execs_options_before_the_target_too(cli, fleet: Fleet):  # noqa: F811
    r = cli("--config", fleet.config, "exec", "-L", "-t", "5", "n01", "echo", "-t", "5")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "n01: -t 5\n", "")
