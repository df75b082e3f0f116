"""The command line's words checked as text before any command runs: bytes that are not text are a usage error.

On POSIX, Python decodes argv in the locale's encoding with `surrogateescape`: a byte it cannot read arrives as a
lone surrogate (U+DC80-U+DCFF) that no UTF-8 writer accepts, so it would fail late (after a change was made) or be
echoed escaped. A text option or argument is read as UTF-8 when its bytes are, whatever the locale (`text_meant`);
otherwise such a byte is refused here, once, with exit 2 before anything is changed. Two kinds of words keep their
bytes, because the bytes are what the user meant: file paths and `exec`'s remote command words.

The check costs nothing on a clean command line: the command tree is walked (with Click's own parser, which neither
converts values nor runs callbacks) only when a word is read otherwise as UTF-8, or not at all.

File options get their path here too (`exact_path`), from the text as typed: pathlib would read an empty value as
`.` and `./-` as `-`. It is imported at start-up, which a module with the output file's machinery is not.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path, PosixPath
from typing import TYPE_CHECKING, SupportsIndex

import typer  # at run time: Typer reads the callback's annotations to pass it the parameter

from factoryctl.errors import UsageError

if TYPE_CHECKING:
    from typer._click import Command, Context, Parameter

#: (command path without the program name, parameter name): words passed on as bytes.
PASSED_THROUGH = frozenset({("exec", "command")})

#: How much of a refused value the message quotes.
QUOTED_CHARS = 40


def text_meant(word: str) -> str | None:
    """The text a command-line word stands for, as it is stored (UTF-8); None: its bytes are not text.

    Python reads argv in the locale's encoding. Bytes that are UTF-8 are read as UTF-8 whatever the locale, as
    terminals and scripts send today: under `LC_ALL=C` with `PYTHONUTF8=0` (ASCII, every other byte escaped; plain
    `LC_ALL=C` is UTF-8 mode) `naïve` was refused as "not UTF-8", and a Latin-1 locale read it `naÃ¯ve`. Other
    bytes keep the locale's reading when it took them all (`café` typed in a Latin-1 locale, the byte 0xE9); left
    escaped (a UTF-8 or ASCII locale), they are refused.
    """
    if word.isascii():
        return word
    try:
        return word.encode(sys.getfilesystemencoding(), "surrogateescape").decode("utf-8")
    except UnicodeError:
        return None if undecodable(word) else word


def undecodable(text: str) -> bool:
    """Whether `text` holds a byte that was not UTF-8 (a lone surrogate from `surrogateescape`, or any other)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def shown_bytes(text: str) -> str:
    r"""`text` for a message: undecodable bytes as `\xff`, cut to `QUOTED_CHARS` characters with `...`."""
    return bytes_as_text(text if len(text) <= QUOTED_CHARS else text[:QUOTED_CHARS] + "...")


def bytes_as_text(text: str) -> str:
    r"""`text` with each undecodable byte written `\xff` (any other lone surrogate as `?`): printable anywhere."""
    raw = text.encode("utf-8", "surrogateescape") if _only_escapes(text) else text.encode("utf-8", "replace")
    return raw.decode("utf-8", "backslashreplace")


def shell_word(text: str) -> str:
    r"""`text` quoted for a shell hint; with undecodable bytes in bash's `$'...'`, which writes them (`$'\xe9'`)."""
    import shlex

    if not undecodable(text):
        return shlex.quote(text)
    escaped = bytes_as_text(text.replace("\\", "\\\\").replace("'", "\\'"))
    return f"$'{escaped}'"


def _only_escapes(text: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


class StdStream(PosixPath):
    """A file option given `-` itself: stdin for an input (`--trace -`), stdout for an output (`--schedule-out -`).

    Its own type because pathlib makes `./-` (the file named `-`) into `-` as well.
    """


def is_std_stream(path: Path | None) -> bool:
    """Whether a file option's value is `-` itself (stdin or stdout), rather than a file."""
    return isinstance(path, StdStream)


def exact_path(stream: str | None = None) -> Callable[[typer.CallbackParam, str | None], Path | None]:
    """The callback of a file option or argument; `stream` is what its `-` means (stdin or stdout), None: files only.

    The option keeps its text (`path_type=str`; still a path for completion and for file names that are not UTF-8)
    and this makes it a Path: an empty value is a usage error (pathlib would read it as `.`, the current directory,
    "it is a directory"); with a `stream`, only `-` itself is that stream and `./-` is the file named `-`; without
    one, `-` is a file too. A file named `-` is named by its absolute path, so no message, hint or printed path reads
    it as a stream. Example: `typer.Option(None, "--schedule-out", path_type=str, callback=exact_path("stdout"))`;
    `--curve` and `-c/--config` take `exact_path()`, `init`'s PATH argument `exact_path("stdout")`.
    """

    def given(param: typer.CallbackParam, value: str | None) -> Path | None:
        if value is None:
            return None
        option = _param_name(param)  # `--config`; `PATH` for an argument
        if not value:
            either = f", or - for {stream}" if stream is not None else ""
            raise UsageError(f"{option} is empty, and it needs a file name.", f"give {option} a file name{either}.")
        if stream is not None and value == "-":
            return StdStream("-")
        path = Path(value)
        return path.absolute() if str(path) == "-" else path  # `./-`: so named in messages, which `-` would not say

    return given


def check_text_arguments(args: list[str]) -> None:
    """Raise UsageError (exit 2) for an option or argument that is not text (`text_meant`); paths and exec's words pass.

    A text value the locale read otherwise than its UTF-8 (`text_meant`) is replaced in `args`, in place, by the text
    it stands for, in the word it came from and no other: `-r naïve` in a Latin-1 locale, or under `LC_ALL=C` with
    `PYTHONUTF8=0`, is stored as naïve, and a path or exec word that reads the same keeps its bytes. Called by `run()`
    before the command is parsed for real, so nothing has changed yet. A command line that does not parse is left to
    Click's own error.
    """
    if all(text_meant(word) == word for word in args):
        return
    from typer.main import get_command

    from factoryctl.cli.app import app

    meant: dict[int, tuple[int, str]] = {}
    _check_command(get_command(app), "factoryctl", (), [_Word(word, at) for at, word in enumerate(args)], None, meant)
    for at, (length, text) in meant.items():
        args[at] = args[at][: len(args[at]) - length] + text  # the value ends its word: `-rvalue`, `--reason=value`


class _Word(str):
    """A command-line word that knows its position in argv, as do the pieces Click's parser cuts from it.

    Click's parser takes a value whole (`-r value`: the word itself), or cuts it from its word's end with a slice
    (`-rvalue`) or `split` (`--reason=value`): each piece keeps `at`, so a value names the one word it came from
    (a path or an exec word that reads the same is another word, left as it is).
    """

    at: int

    def __new__(cls, text: str, at: int) -> _Word:
        word = super().__new__(cls, text)
        word.at = at
        return word

    def __getitem__(self, key: SupportsIndex | slice) -> _Word:
        return _Word(str.__getitem__(self, key), self.at)

    def split(self, sep: str | None = None, maxsplit: SupportsIndex = -1) -> list[str]:
        return [_Word(piece, self.at) for piece in str.split(self, sep, maxsplit)]


def _check_command(
    command: Command,
    name: str,
    path: tuple[str, ...],
    args: list[str],
    parent: Context | None,
    meant: dict[int, tuple[int, str]],
) -> None:
    """Check the words `command` takes from `args`, then those of the subcommand they name, if any.

    Each text value read otherwise as UTF-8 goes into `meant`, by the position of its word (`_Word`): its length and
    the text it stands for (`text_meant`).
    """
    from factoryctl.cli.exec_args import ExecCommand

    ctx = command.context_class(command, info_name=name, parent=parent, resilient_parsing=True)
    # exec's words as its own parser takes them: a remote `-rX` (no exec option) left TARGET unparsed, unchecked
    words = command.separated_args(ctx, args) if isinstance(command, ExecCommand) else list(args)
    opts, rest, _order = command.make_parser(ctx).parse_args(args=words)
    for param in command.get_params(ctx):
        if (*path, param.name) in PASSED_THROUGH or _is_path(param):
            continue
        value = opts.get(param.name)
        for word in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(word, str):
                continue
            text = text_meant(word)
            if text is None:
                raise _refused(_param_name(param), word)
            if text != word and isinstance(word, _Word):
                meant[word.at] = (len(word), text)
    commands = getattr(command, "commands", None)
    if commands is None or not rest:
        return
    sub = commands.get(rest[0])
    if sub is None:
        if text_meant(rest[0]) is None:
            raise _refused("the command name", rest[0])
        return
    _check_command(sub, rest[0], (*path, rest[0]), rest[1:], ctx, meant)


def _is_path(param: object) -> bool:
    return bool(getattr(getattr(param, "type_descriptor", None), "is_path", False))


def _param_name(param: Parameter) -> str:
    """`--reason` for an option (its long name), `TARGET` for an argument."""
    opts = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
    if getattr(param, "param_type_name", "") == "option" and opts:
        return str(opts[0])
    return str(getattr(param, "metavar", None) or param.name).upper()


def _refused(name: str, word: str) -> UsageError:
    return UsageError(
        f"{name} must be UTF-8 text, and '{shown_bytes(word)}' is not",
        "type it in UTF-8 (what is stored and shown is UTF-8); check the locale of the terminal or script "
        "that passed it (`locale`).",
    )


#: The error handler `main()` gives stdout: argv's undecodable bytes written back as those bytes, anything else the
#: locale cannot write as `?` (never an error).
OUTPUT_ERRORS = "factoryctl.bytes_or_replace"


def register_output_errors() -> str:
    """Register `OUTPUT_ERRORS` (once per process; registering again replaces it) and return its name.

    A path printed for a machine (`cat "$(factoryctl config locate)"`) must be the file's exact bytes: `replace`
    wrote `?` for a Latin-1 byte, naming another file; `surrogateescape` alone would make a character the locale
    cannot write (an `é` under LANG=C) fatal.
    """
    import codecs

    codecs.register_error(OUTPUT_ERRORS, _bytes_or_replace)
    return OUTPUT_ERRORS


def _bytes_or_replace(error: UnicodeError) -> tuple[str | bytes, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    chunk = error.object[error.start : error.end]
    if all(0xDC80 <= ord(c) <= 0xDCFF for c in chunk):
        return bytes(ord(c) - 0xDC00 for c in chunk), error.end
    return "?" * len(chunk), error.end
