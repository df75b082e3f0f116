"""The node's login shell reads every argument we quote as exactly that argument: sh, bash, zsh and fish alike.

Checked against the real shells (`SHELL -c LINE`, as sshd runs a command): a Python on the other side prints the
argv it got as JSON. `shlex.join`, used before, failed on fish (backslashes, and a quote escaped to run a command).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factoryctl.transport.quoting import shell_join, shell_quote

SHELLS = ("sh", "bash", "zsh", "fish")
HARD_WORDS = [
    "",
    " ",
    "it's",
    "C:\\temp",
    "\\'$(touch /nonexistent/pwned)\\'",
    "a\\\\'b",
    "=ls",
    "LC_ALL=C",
    "A=b c",
    "A=",
    "A=~/x",
    "A=$HOME",
    "%self",
    "~",
    "*",
    "{a,b}",
    "$HOME",
    "`id`",
    "line one\nline two",
    "tab\there",
    "-n",
    "'",
    "\\",
    '"',
    "ünïcødé ✓",
    "a;b|c&d>e<f",
]


def argv_seen_by(shell: str, words: list[str]) -> list[str]:
    """What a program started by `shell -c` gets as its arguments when we send `words` quoted."""
    path = shutil.which(shell)
    assert path is not None, f"this test drives a real {shell}: install it (apt-get install {shell})"
    program = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]
    done = subprocess.run(
        [path, "-c", shell_join([*program, *words])], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


@pytest.mark.parametrize("shell", SHELLS)
def test_hard_words_arrive_unchanged(shell):
    assert argv_seen_by(shell, HARD_WORDS) == HARD_WORDS


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)))
def test_any_words_arrive_unchanged_in_fish_and_sh(words):
    assert argv_seen_by("fish", words) == words
    assert argv_seen_by("sh", words) == words


@pytest.mark.parametrize("shell", SHELLS)
def test_a_leading_assignment_still_sets_the_commands_environment(shell):
    # `exec n1 -- LC_ALL=C cmd`, as with ssh and pdsh: quoting the whole word made it a command name (exit 127)
    path = shutil.which(shell)
    assert path is not None
    program = [sys.executable, "-c", "import os; print(os.environ['LC_ALL'], os.environ['A'])"]
    line = shell_join(["LC_ALL=C", "A=x y ~", *program])
    done = subprocess.run([path, "-c", line], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, "C x y ~\n"), done.stderr


def test_plain_words_stay_bare_and_the_rest_is_quoted():
    assert shell_join(["python3", "-u", "/a/b.pyz", "--node", "n1"]) == "python3 -u /a/b.pyz --node n1"
    assert shell_quote("it's") == "'it'\"'\"'s'"
    assert shell_quote("a\\b") == "'a'\"\\\\\"'b'"
    assert shell_quote("=ls") == "'=ls'"
    assert shell_quote("LC_ALL=C") == "LC_ALL=C"
    assert shell_quote("A=it's") == "A='it'\"'\"'s'"
    assert shell_quote("") == "''"
