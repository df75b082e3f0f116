"""`factoryctl completion SHELL`: print the bash, zsh or fish completion script (also shipped in completions/).

The scripts are ours, not Typer's; `--install-completion` and `--show-completion` print the same ones (`register`
puts them in Typer's table). Constraints they keep:

- zsh: the script completes on the very first TAB after compinit autoloads it from `$fpath`.
- bash: the whole command line is sent, not bash's words, which it splits at `@`, `:` and `=` ($COMP_WORDBREAKS),
  so node lists such as `gpu01,@r<TAB>` complete.
- fish: one helper call per TAB (Typer's script made two, each paying for the inventory).
- `--install-completion` writes where the shell reads: fish's `$XDG_CONFIG_HOME/fish`, zsh's `$ZDOTDIR/.zshrc`
  (Typer's installers wrote under `~` whatever these said, and fish then completed nothing).
- Every script sends the completion helper's stderr to /dev/null: the rc line runs in every shell, also where
  `factoryctl` is not on PATH.
- `--install-completion` and `--show-completion` run from a shell without a script (`sh -c ...`) are our usage
  error, as `factoryctl completion sh` is (Typer said a bare "Shell sh is not supported.", exit 1).
- Candidates with descriptions are written by our own zsh and fish classes (`use_our_completers`): descriptions are
  quoted for the shell exactly (apostrophes, double quotes), never run through rich markup, and kept on one line.

Also the completion callbacks for options whose values are a fixed list kept as plain strings (an event kind, a log
level, scheduler policies): one helper for all of them, so every such option completes the same way, choices in
their documented order. Values named in a data file given on the same line (`power simulate`'s GPUs and workloads,
from its `--curve` file) are read by `data_file_rows`, briefly and only from a regular file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import typer
from typer._click.shell_completion import CompletionItem, add_completion_class
from typer._completion_classes import FishComplete, ZshComplete

if TYPE_CHECKING:
    from pathlib import Path

COMPLETE_VAR = "_FACTORYCTL_COMPLETE"
#: Shells with a completion script, in the order the help names them.
SHELLS = ("bash", "zsh", "fish")

#: Typer's zsh script (its `%(name)s` fields, and the same `_TYPER_COMPLETE_ARGS` protocol) plus the autoload case:
#: when compinit autoloads the file from `$fpath` for a TAB, the file's body is that TAB's completion function, so it
#: registers `_factoryctl_completion` for the next TABs and completes this one. Sourced or eval'd, it registers only.
ZSH_SCRIPT = """\
#compdef %(prog_name)s

%(complete_func)s() {
  eval "$(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" %(autocomplete_var)s=complete_zsh %(prog_name)s 2>/dev/null)"
}

compdef %(complete_func)s %(prog_name)s
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  # autoloaded from $fpath by the TAB being completed: answer it now
  %(complete_func)s "$@"
fi
"""


#: Typer's bash script (same fields, same `COMP_WORDS`/`COMP_CWORD` protocol), sent the command line as typed up to
#: the cursor (Click splits it as the shell will parse it: quotes kept together; an empty last word after a blank),
#: with COMP_CWORD -1: the last word is the one to complete. readline then replaces just the text after the word's
#: last $COMP_WORDBREAKS character (keeping a `@` or `$` there in that text: its "special prefixes"), so each
#: candidate loses what the word holds before that text. The candidates are read a line each with `read` (not bash
#: 4's `mapfile`, which bash 3.2, macOS's, lacks): an
#: unquoted `$( )` also expanded them as file patterns, so `gpu[01-03]` became a file `gpu3` of the current directory.
BASH_SCRIPT = """\
%(complete_func)s() {
    local line="${COMP_LINE:0:COMP_POINT}" word text before candidate
    local -a words
    IFS=$' \\t\\n' read -r -a words <<< "$line"
    if [[ -z $line || $line == *[[:space:]] ]]; then words+=(""); line+="''"; fi
    word="${words[${#words[@]}-1]}"
    COMPREPLY=()
    while IFS= read -r candidate; do [[ -n $candidate ]] && COMPREPLY+=("$candidate"); done < <(
        env COMP_WORDS="$line" COMP_CWORD=-1 %(autocomplete_var)s=complete_bash $1 2>/dev/null
    )
    text="${word##*[$COMP_WORDBREAKS]}"
    before="${word%%"$text"}"
    [[ $before == *[@\\$] ]] && before="${before%%?}"
    [[ -n $before ]] && COMPREPLY=( "${COMPREPLY[@]#"$before"}" )
    return 0
}

complete -o default -F %(complete_func)s %(prog_name)s
"""


#: One helper call per TAB. Typer's fish script ran factoryctl twice per TAB: `is-args` in `--condition` (are there
#: candidates, or should fish offer files?), then `get-args` in `--arguments` for the same candidates. Here the
#: condition function asks once with our `candidates` action (`FishCandidates.complete`: the candidates, exit status
#: 0 when there are some), keeps them in a global variable, and `--arguments` prints that variable.
FISH_SCRIPT = """\
function %(complete_func)s --description 'ask %(prog_name)s once per TAB for its candidates'
    set -g %(complete_func)s_candidates (env %(autocomplete_var)s=complete_fish _TYPER_COMPLETE_FISH_ACTION=candidates \\
        _TYPER_COMPLETE_ARGS=(commandline -cp) %(prog_name)s 2>/dev/null)
end
complete --command %(prog_name)s --no-files --condition %(complete_func)s \\
    --arguments '(string join \\n -- $%(complete_func)s_candidates)'
"""


def complete_choices(choices: Iterable[str]) -> Callable[[str], list[str]]:
    """A completion callback offering the `choices` that start with what was typed (`autocompletion=` of an option).

    Example: `typer.Option(None, "--kind", autocompletion=complete_choices(EVENT_KINDS))`.
    """
    fixed = tuple(choices)

    def complete(incomplete: str) -> list[str]:
        return [choice for choice in fixed if choice.startswith(incomplete)]

    return complete


def complete_choice_list(choices: Iterable[str]) -> Callable[[str], list[str]]:
    """Like `complete_choices`, for a comma-separated list (`--policy fifo,sjf`): completes its last item.

    Each candidate is the whole value (what was typed before the last comma, then the choice), as the shells replace
    the whole word; choices already in the list are not offered again.
    """
    fixed = tuple(choices)

    def complete(incomplete: str) -> list[str]:
        head, _, last = incomplete.rpartition(",")
        taken = set(head.split(",")) if head else set()
        prefix = f"{head}," if head else ""
        return [prefix + choice for choice in fixed if choice.startswith(last) and choice not in taken]

    return complete


#: How much of a data file a completion reads (its first bytes): a wrong candidate costs nothing, a slow one every TAB.
DATA_FILE_BYTES = 4 << 20


def data_file_rows(given: object) -> list[dict[str, str]]:
    """The rows of the CSV file `given` to an option before the word completed, by lower-cased column; [] if none.

    For candidates taken from a file named on the command line (`power simulate --curve f.csv --gpu <TAB>`): only a
    regular file is read (`-`, a FIFO or a device never: the TAB would wait on it), only its first DATA_FILE_BYTES,
    split as CSV without the command's checks. A file that cannot be read offers nothing.
    """
    import csv
    import stat

    if given is None or str(given) in ("", "-"):
        return []
    try:
        fd = os.open(str(given), os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return []
    with open(fd, "rb") as stream:  # closes fd
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return []
            head = stream.read(DATA_FILE_BYTES)
        except OSError:
            return []
    lines = head.decode("utf-8-sig", "replace").splitlines()
    if len(head) == DATA_FILE_BYTES:  # cut short: its last line may be part of a row
        lines.pop()
    try:
        rows = [row for row in csv.reader(lines) if any(row)]
    except csv.Error:  # a line the csv module cannot read (a field over its limit)
        return []
    header = [name.strip().lower() for name in rows[0]] if rows else []
    return [dict(zip(header, row, strict=False)) for row in rows[1:]]  # a short row lacks its last columns


def complete_names(names: Iterable[str], incomplete: str) -> list[str]:
    """The distinct `names` (stripped, in their order) that start with `incomplete`, as written (Typer's test too)."""
    offered = dict.fromkeys(name.strip() for name in names)
    return [name for name in offered if name and name.startswith(incomplete)]


def one_line(text: str) -> str:
    """A description as one line, words as written: no markup rendering, blanks and line breaks one space."""
    return " ".join(text.split())


def zsh_word(text: str) -> str:
    r"""`text` as one double-quoted word of the `((value:description ...))` list that `_arguments` evals, verbatim.

    Three readers in turn: zsh's `eval` of the single-quoted `_arguments '...'` (an apostrophe is `'\''`), the
    `eval` of the list inside it (in double quotes: a backslash, `"`, `$` and a backquote take a backslash), then
    `_describe`, which splits at the first `:` and drops a backslash before any character (a backslash is written
    `\\`, a colon `\:`).
    """
    described = text.replace("\\", "\\\\").replace(":", "\\:")
    quoted = "".join("\\" + char if char in '\\"$`' else char for char in described)
    return '"' + quoted.replace("'", "'\\''") + '"'


class ZshCandidates(ZshComplete):
    """Typer's zsh protocol (an `_arguments '*: :((...))'` line to eval), each candidate quoted by `zsh_word`."""

    def format_completion(self, item: CompletionItem) -> str:
        """`"value":"description"`, or `"value"` alone."""
        if item.help:
            return f"{zsh_word(item.value)}:{zsh_word(one_line(item.help))}"
        return zsh_word(item.value)


class FishCandidates(FishComplete):
    """Typer's fish protocol: a line per candidate, `value<TAB>description`, each part on one line as written.

    Plus our `candidates` action, `FISH_SCRIPT`'s one call per TAB: `get-args`'s output with `is-args`'s status.
    Typer's two actions stay for scripts installed before it.
    """

    def complete(self) -> str:
        """The candidates; for `candidates`, exit 1 when there are none (fish then offers files), as `is-args`."""
        if os.environ.get("_TYPER_COMPLETE_FISH_ACTION") != "candidates":
            return str(super().complete())
        args, incomplete = self.get_completion_args()
        shown = [self.format_completion(item) for item in self.get_completions(args, incomplete)]
        if not shown:
            sys.exit(1)
        return "\n".join(shown)

    def format_completion(self, item: CompletionItem) -> str:
        """`value<TAB>description`, or the value alone."""
        value = str(item.value).replace("\t", " ").replace("\n", " ")  # fish reads a line, then splits at a tab
        return f"{value}\t{one_line(item.help)}" if item.help else value


def use_our_completers() -> None:
    """Answer zsh's and fish's completion requests with our classes (Typer registers its own on every run)."""
    add_completion_class(ZshCandidates, "zsh")
    add_completion_class(FishCandidates, "fish")


def completion_script(shell: str) -> str:
    """The completion script for `shell`, as Typer generates it for the `factoryctl` program (ours for bash and zsh)."""
    from typer import _completion_shared

    _use_our_scripts(_completion_shared._completion_scripts)
    script = _completion_shared.get_completion_script(prog_name="factoryctl", complete_var=COMPLETE_VAR, shell=shell)
    return str(script).rstrip() + "\n"


def _use_our_scripts(scripts: dict[str, str]) -> None:
    """Put our bash, zsh and fish scripts in Typer's table of scripts by shell."""
    scripts["bash"] = BASH_SCRIPT
    scripts["zsh"] = ZSH_SCRIPT
    scripts["fish"] = FISH_SCRIPT


def check_shell(value: str) -> str:
    """The SHELL argument: one of `SHELLS`, else our usage error (exit 2) naming them."""
    return _scripted(value, "choose bash, zsh or fish, e.g. `factoryctl completion bash`.")


def _scripted(shell: str, hint: str) -> str:
    """`shell` if it has a completion script, else our usage error (exit 2) with `hint`."""
    if shell not in SHELLS:
        from factoryctl.errors import UsageError

        raise UsageError(f"there is no completion script for `{shell}`.", hint)
    return shell


#: What to do when `--install-completion` or `--show-completion` runs from a shell without a script (`sh -c`).
DETECTED_SHELL_HINT = (
    "choose bash, zsh or fish: run the command from one of them, or print a script with `factoryctl completion bash`."
)


def _detected_shell(shell: str | None) -> str:
    """`shell`, else the shell factoryctl runs from (Typer's detection), refused unless it has a script (exit 2).

    Typer said a bare `Shell sh is not supported.` (exit 1, no hint) for `--install-completion` run from sh, where
    `factoryctl completion sh` is our sentence, hint and exit 2.
    """
    from typer import _completion_shared

    found = shell if shell is not None else _completion_shared._get_shell_name()
    if found is None:
        from factoryctl.errors import UsageError

        raise UsageError("cannot tell which shell factoryctl runs from.", DETECTED_SHELL_HINT)
    return _scripted(found, DETECTED_SHELL_HINT)


def _check_detected_shell() -> None:
    """Make Typer's `--install-completion` and `--show-completion` refuse a shell without a script as we do.

    Their callbacks call `install` and `get_completion_script` through typer.completion's names, so those are wrapped.
    """
    from typer import _completion_shared
    from typer import completion as typer_completion  # imported by typer itself

    install, script = _completion_shared.install, _completion_shared.get_completion_script
    if getattr(typer_completion, "install", None) is not install:  # wrapped already, or a Typer that works otherwise
        return

    def install_checked(
        shell: str | None = None, prog_name: str | None = None, complete_var: str | None = None
    ) -> tuple[str, Path]:
        return install(shell=_detected_shell(shell), prog_name=prog_name, complete_var=complete_var)

    def script_checked(*, prog_name: str, complete_var: str, shell: str | None) -> str:
        return script(prog_name=prog_name, complete_var=complete_var, shell=_detected_shell(shell or None))

    setattr(typer_completion, "install", install_checked)  # noqa: B010 - replacing a module's function
    setattr(typer_completion, "get_completion_script", script_checked)  # noqa: B010
    setattr(_completion_shared, "install_fish", install_fish)  # noqa: B010 - `install` calls these by name
    setattr(_completion_shared, "install_zsh", install_zsh)  # noqa: B010


def fish_config_dir() -> Path:
    """The directory fish reads as `$__fish_config_dir`: `$XDG_CONFIG_HOME/fish`, else `~/.config/fish`."""
    from pathlib import Path

    xdg = os.environ.get("XDG_CONFIG_HOME")
    return Path(xdg, "fish") if xdg else Path.home() / ".config" / "fish"


def zsh_rc() -> Path:
    """The `.zshrc` zsh reads: in `$ZDOTDIR` when set, else in the home directory."""
    from pathlib import Path

    return Path(os.environ.get("ZDOTDIR") or Path.home(), ".zshrc")


def install_fish(*, prog_name: str, complete_var: str, shell: str) -> Path:
    """Typer's fish installer, into the completions directory fish reads (Typer's ignored `$XDG_CONFIG_HOME`)."""
    from typer import _completion_shared

    path = fish_config_dir() / "completions" / f"{prog_name}.fish"
    path.parent.mkdir(parents=True, exist_ok=True)
    script = _completion_shared.get_completion_script(prog_name=prog_name, complete_var=complete_var, shell=shell)
    path.write_text(f"{script}\n")
    return path


def install_zsh(*, prog_name: str, complete_var: str, shell: str) -> Path:
    """Typer's zsh installer, its lines added to the `.zshrc` zsh reads (Typer wrote `~/.zshrc` despite `$ZDOTDIR`).

    The script goes to `~/.zfunc/_PROG`, which the added line puts on `$fpath` before `compinit`; the menu-select
    style is added only when the file has no `zstyle` line yet, as Typer does.
    """
    from pathlib import Path

    from typer import _completion_shared

    rc = zsh_rc()
    rc.parent.mkdir(parents=True, exist_ok=True)
    content = rc.read_text() if rc.is_file() else ""
    completion_line = "fpath+=~/.zfunc; autoload -Uz compinit; compinit"
    if completion_line not in content:
        content += f"\n{completion_line}\n"
    if "zstyle" not in content:
        content += "\nzstyle ':completion:*' menu select\n"
    rc.write_text(f"{content.strip()}\n")
    path = Path.home() / ".zfunc" / f"_{prog_name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        _completion_shared.get_completion_script(prog_name=prog_name, complete_var=complete_var, shell=shell)
    )
    return path


def register(app: typer.Typer) -> None:
    """Add `completion` to the root app; make Typer's `--install-completion` use our scripts, and refuse as we do."""
    from typer import _completion_shared  # already imported by typer itself: costs nothing

    _use_our_scripts(_completion_shared._completion_scripts)
    _check_detected_shell()

    @app.command("completion", short_help="Print the bash, zsh or fish completion script.")
    def completion_command(
        shell: str = typer.Argument(
            ...,
            help="bash, zsh or fish.",
            callback=check_shell,
            autocompletion=complete_choices(SHELLS),
        ),
    ) -> None:
        """Print a shell completion script (`factoryctl --install-completion` installs it for the current shell)."""
        from factoryctl.cli.render import emit

        emit(completion_script(shell))
