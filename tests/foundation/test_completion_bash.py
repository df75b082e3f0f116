"""bash completion driven through a real interactive bash on a pseudo-terminal.

bash splits a word at the characters of $COMP_WORDBREAKS (`@`, `:`, `=` among them) before the completion function
sees it, and readline replaces only the text after the last of them (with a `@` or `$` there); Typer's script sent
those pieces as separate arguments, so `gpu01,@r<TAB>` completed nothing. Only a real bash shows what ends up on the
line, so these tests type into one and read the line back through a key bound to print it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pty_shell import PtyShell, factoryctl_on_path

#: Ctrl-T prints the line being edited between these marks (`bind -x`), so a test reads the whole line after a TAB.
LINE_START, LINE_END = "LINE{", "}ENIL"


class Bash(PtyShell):
    """`bash --rcfile RC -i`: our completion script sourced, Ctrl-T bound to print the line."""

    def __init__(self, rcfile: Path, env: dict[str, str]) -> None:
        bash = shutil.which("bash")
        assert bash is not None
        super().__init__([bash, "--noprofile", "--rcfile", str(rcfile), "-i"], {**env, "TERM": "dumb"})

    def complete(self, line: str) -> str:
        """Type `line` and TAB, then return the line as bash has it after the completion; the line is then cleared."""
        self.type(line + "\t\x14")
        assert self.read_until(LINE_END.encode()), self.seen
        match = re.search(re.escape(LINE_START) + "(.*?)" + re.escape(LINE_END), self.seen.decode(errors="replace"))
        assert match is not None, self.seen
        self.type("\x15")  # Ctrl-U: kill the line
        return match.group(1)


def start_bash(cli, tmp_path: Path, factory_yaml: str) -> Bash:
    """An interactive bash at its prompt: our script sourced, `factoryctl` on PATH, `factory_yaml` its config."""
    config = tmp_path / "factory.yaml"
    config.write_text(factory_yaml)
    script = tmp_path / "factoryctl.bash"
    script.write_text(cli("completion", "bash").stdout)
    rcfile = tmp_path / "bashrc"
    rcfile.write_text(
        f"PS1='bash-ready> '\nsource {script}\n"
        f'bind -x \'"\\C-t": printf "{LINE_START}%s{LINE_END}\\n" "$READLINE_LINE"\'\n'
    )
    shell = Bash(rcfile, {"PATH": factoryctl_on_path(tmp_path / "bin"), "FACTORYCTL_CONFIG": str(config)})
    assert shell.read_until(b"bash-ready> "), shell.seen
    return shell


@pytest.fixture
def bash(cli, tmp_path: Path) -> Iterator[Bash]:
    shell = start_bash(
        cli,
        tmp_path,
        "nodes:\n  gpu[01-03]: {gpus: 4}\n  ws: {transport: local, sim: {gpus: 2}}\ngroups:\n  rack-a: gpu[01-02]\n",
    )
    yield shell
    shell.close()


def test_a_group_after_a_comma_completes_in_bash(bash):
    assert bash.complete("factoryctl gpus gpu01,@r") == "factoryctl gpus gpu01,@rack-a "
    assert bash.complete("factoryctl gpus gpu01,@") == "factoryctl gpus gpu01,@rack-a "
    assert bash.complete("factoryctl gpus @") == "factoryctl gpus @rack-a "


def test_plain_words_and_option_values_still_complete_in_bash(bash):
    assert bash.complete("factoryctl config va") == "factoryctl config validate "
    assert bash.complete("factoryctl gpus gpu01,w") == "factoryctl gpus gpu01,ws "
    assert bash.complete("factoryctl gpus --output=j") == "factoryctl gpus --output=json "
    assert bash.complete("echo | factoryctl sim i") == "echo | factoryctl sim inject "


def test_a_quoted_argument_with_blanks_counts_as_one_word_in_bash(bash):
    assert bash.complete('factoryctl nodes drain -r "disk full" w') == 'factoryctl nodes drain -r "disk full" ws '
    assert bash.complete("factoryctl nodes drain -r 'a b c' gpu01,w") == "factoryctl nodes drain -r 'a b c' gpu01,ws "


def test_a_gpu_list_continues_in_bash(bash):
    assert bash.complete("factoryctl gpus gpu01/0-2,") == "factoryctl gpus gpu01/0-2,3 "


def test_bash_falls_back_to_file_names_where_factoryctl_offers_none(cli, tmp_path: Path) -> None:
    """No candidate came back as one empty candidate: bash then inserted a space and never completed file names."""
    (tmp_path / "trace.csv").write_text("job_id,submit_time_s,duration_s,num_gpus\n")
    shell = start_bash(cli, tmp_path, "nodes:\n  gpu01: {}\n")
    try:
        line = f"factoryctl sched simulate --trace {tmp_path}/tra"
        assert shell.complete(line) == f"factoryctl sched simulate --trace {tmp_path}/trace.csv "
        assert shell.complete(f"factoryctl -c {tmp_path}/factory.y") == f"factoryctl -c {tmp_path}/factory.yaml "
    finally:
        shell.close()
