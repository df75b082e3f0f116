"""An output file written beside a command's results (`--schedule-out`), with the same rules in every command.

`sched simulate` and `power simulate` replay for a while, then print their results and write a schedule. The rules,
kept here once: a bad path fails before the replay; the output may not be one of the command's own inputs; `-` (or
a path naming stdout itself) is stdout, the results then going to stderr; a regular file is written beside its
place and renamed over it only once complete, so a failed or interrupted replay never leaves or empties a file; a
FIFO or a device is checked before the replay but opened only to be written, so waiting for a reader neither comes
before the work nor holds off Ctrl-C and SIGTERM; the results are printed first, so a late write failure costs only
the file (exit 1, saying the results above are complete). Each command keeps its own wording. A symbolic link on
the way to the file that another user could have planted (in a directory anyone may write, not yours or root's) is
refused before the replay: the rename would replace the file it names, and `fs.protected_symlinks` does not see it.

The input side of `-` is here too: a file option given `-` reads stdin (`--trace -`, `--prices -`) through
`stdin_text`, which refuses a terminal or a closed stdin and names `stdin` in its errors. Only `-` itself means
stdin or stdout (`StdStream`): pathlib reads `./-` as `-` too, and `''` as `.`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from factoryctl.cli.arguments import is_std_stream
from factoryctl.cli.render import emit, write_whole
from factoryctl.errors import ActionFailed, UsageError
from factoryctl.private_files import PlantedLink, resolve_trusted_links


def stdin_text(option: str, what: str, example: str, check_first_line: Callable[[str], None] | None = None) -> str:
    """All of stdin as UTF-8 text, for `option -`; named `stdin` in errors (`stdin:3: the trace is not UTF-8 text`).

    A terminal there is a usage error (it would wait for a file typed by hand), as are a closed stdin and one that
    cannot be read; `what` names the file in messages ("trace"), `example` is a file name for the hint. It is read
    in bounded chunks (`textfile.read_text_stream`), `check_first_line` checking the header as soon as it arrives, so
    an endless pipe (`yes |`) fails at line 1 or at the size limit, never by filling memory.
    """
    from factoryctl.textfile import decode_utf8, read_text_stream

    hint = f"pipe the {what} in (`{option} - < {example}`), or give {option} its path."
    if sys.stdin is None or sys.stdin.closed:
        raise UsageError(f"{option} - reads the {what} from stdin, which is closed.", hint)
    if sys.stdin.isatty():
        raise UsageError(f"{option} - reads the {what} from stdin, which is a terminal.", hint)
    try:
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None:  # a text stream put in place of stdin (an embedding caller): already in memory
            return decode_utf8(sys.stdin.read().encode(), "stdin", what)
        return read_text_stream(buffer, "stdin", what, check_first_line)
    except OSError as exc:
        raise UsageError(f"cannot read the {what} from stdin: {exc.strerror or exc}.", hint) from None


@dataclass
class OutFile:
    """An output file opened before the run: `named` completes "cannot write ..." (`the schedule to out.csv`)."""

    path: Path
    option: str
    named: str
    #: The open file; None: stdout, or a FIFO or device, opened only when written (a FIFO's open waits for a reader).
    handle: IO[str] | None
    #: Where the contents are written first (renamed over `path` once complete); None: written to `path` directly.
    temp: Path | None = None
    #: The path is this process's own stdout (`/dev/stdout`, even when that is a file): written as `-` is.
    is_stdout: bool = False
    #: Where `temp` is renamed to: `path` with its links resolved once, when it was opened, so that a link re-pointed
    #: during a long replay cannot send the file elsewhere (a symlinked output keeps its link).
    target: Path | None = None

    def discard(self) -> None:
        """Close the file and drop what was written so far (the file at `path`, if any, is left as it was)."""
        if self.handle is not None:
            self.handle.close()
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)

    def commit(self) -> None:
        """Put the complete contents in place (the rename of the temporary file; nothing for a direct write)."""
        if self.temp is not None:
            os.replace(self.temp, self.target or self.path)

    @property
    def to_stdout(self) -> bool:
        """Whether the file's contents go to stdout (`-`, or a path naming stdout itself)."""
        return is_std_stream(self.path) or self.is_stdout


def same_file(one: Path, other: Path) -> bool:
    """Whether two paths name the same file (through links and relative paths alike)."""
    try:
        return one.exists() and other.exists() and one.samefile(other)
    except OSError:
        return False


def open_out_file(path: Path, option: str, named: str, inputs: Sequence[tuple[Path | None, str]]) -> OutFile:
    """`path` opened for writing before the run, so a bad path fails at once (usage error, exit 2); `-` opens nothing.

    A FIFO or device is only checked (writable, not a directory): it is opened when written (`emit_then_write`).
    `inputs` pairs each input file of the command (None: not given) with the sentence refusing to write over it.
    """
    if is_std_stream(path) or _is_our_stdout(path):
        return OutFile(path, option, named, None, is_stdout=not is_std_stream(path))
    for given, refusal in inputs:
        if given is not None and same_file(path, given):
            raise UsageError(refusal, f"give {option} another file name.")
    try:
        target = Path(resolve_trusted_links(path))  # the rename's, resolved once (a link re-pointed later is not seen)
        info = _stat(path)
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(str(path))
        if info is not None and not stat.S_ISREG(info.st_mode):
            if not os.access(path, os.W_OK):
                raise PermissionError(13, "Permission denied", str(path))
            return OutFile(path, option, named, None)  # a FIFO's open would wait here for its reader
        beside = _beside(path, info, target)
        if beside is not None:
            handle, temp = beside
            return OutFile(path, option, named, handle, temp, target=target)
        handle = path.open("w", encoding="utf-8", newline="")
    except PlantedLink as planted:
        raise UsageError(
            f"cannot write {named}: {planted.problem}; nothing is written.",
            f"give {option} a path without that link.",
        ) from None
    except IsADirectoryError:
        raise UsageError(
            f"cannot write {named}: it is a directory.", f"give {option} a file name, not a directory."
        ) from None
    except OSError as error:
        raise UsageError(f"cannot write {named}: {error.strerror or error}.", _unwritable_hint(path, option)) from None
    return OutFile(path, option, named, handle)


def _unwritable_hint(path: Path, option: str) -> str:
    """What to check when `path` cannot be written: the file itself when it exists read-only, else its directory."""
    if path.exists() and not os.access(path, os.W_OK):
        return f"the file exists and is read-only: make it writable (chmod u+w) or give {option} another file name."
    return "check that its directory exists and is writable."


def _is_our_stdout(path: Path) -> bool:
    """Whether `path` is the file our stdout writes to (`/dev/stdout`, `/proc/self/fd/1`), whatever that is.

    A file, a pipe, a FIFO or a terminal: the schedule and the results would be mixed in it, and renaming a new file
    over a file would lose what stdout wrote there. The null device is not: both are discarded there, and moving
    the results to stderr would show what `> /dev/null` asked to hide.
    """
    try:
        mine, named = os.fstat(sys.stdout.fileno()), path.stat()
        null = os.stat(os.devnull)
    except (OSError, ValueError, AttributeError):
        return False
    same = (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino)
    return same and (named.st_dev, named.st_ino) != (null.st_dev, null.st_ino)


def _stat(path: Path) -> os.stat_result | None:
    """The file at `path`, through links (`/dev/stdout` is the pipe it names); None when there is none yet."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _beside(path: Path, info: os.stat_result | None, target: Path) -> tuple[IO[str], Path] | None:
    """A temporary file beside `target` (`path` resolved: the rename's target), with the existing file's permissions.

    For a regular file `path` (`info`, its stat), or when there is no file yet (None). None for a file whose
    directory takes no new file (then it is written in place).
    """
    if info is not None and not os.access(path, os.W_OK):  # a rename would replace a file we may not write
        raise PermissionError(13, "Permission denied", str(path))
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by OutFile.commit/discard
            "w", encoding="utf-8", newline="", dir=target.parent, prefix=f".{target.name}.", delete=False
        )
    except PermissionError:
        if info is not None:
            return None  # a writable file in a directory that takes no new file: written in place
        raise
    except OSError as error:  # e.g. ENOENT from /proc: say it is the file beside it, not the file, that failed
        if info is None:
            raise
        where = f"cannot create a temporary file beside it in {target.parent} ({error.strerror or error})"
        raise OSError(error.errno, where) from None
    with contextlib.suppress(OSError):  # the old file's permissions, else a new file's (0666 less the umask)
        os.chmod(handle.name, stat.S_IMODE(info.st_mode) if info is not None else 0o666 & ~_umask())
    return handle, Path(handle.name)


def _umask() -> int:
    """The process's umask (reading it means setting it: put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _Ended(BaseException):
    """SIGTERM or SIGHUP during the run (cron's `timeout`, a closed terminal): clean up, then end as the signal says."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def removed_on_failure(open_out: Callable[[], OutFile] | None) -> Iterator[OutFile | None]:
    """Open the output file (`open_out`; None: none) and run the body; dropping the file if the body fails or ends.

    Ended means Ctrl-C, SIGTERM or SIGHUP; what was written of the output file is dropped, the old file kept.

    The handlers are in place before the file is opened, and SIGINT, SIGTERM and SIGHUP are held while it is (a
    temporary file is created, then named in `OutFile`): a signal in between would leave the temporary file behind.
    That open never waits (`open_out_file` leaves a FIFO, whose open waits for its reader, to the writing).
    Only the first signal ends the run: the others of a burst (`kill` in a loop) are dropped until it is reported,
    else one broke into the clean-up of the first (a temporary file left, `<exception str() failed>` at teardown).
    SIGTERM and SIGHUP are reported here, and the process exits (SystemExit), their handlers still dropping the rest;
    a Ctrl-C leaves as KeyboardInterrupt for the error boundary to report, the handlers before put back.
    """
    came: list[int] = []
    previous = _catch_ends(came) if open_out is not None else {}
    out: OutFile | None = None
    try:
        with _ends_held():
            out = open_out() if open_out is not None else None
        yield out
    except _Ended as ended:
        if out is not None:
            out.discard()
        from factoryctl.cli.signals import report_stopped

        status = 128 + ended.signum
        report_stopped(status)  # SIGHUP too: stderr may be a log file that outlives the terminal
        previous = {}  # the process exits: the rest of the burst stays dropped (the boundary's handlers, reporting
        raise SystemExit(status) from None  # again, broke into the exit: `hung up` twice, a HungUp traceback)
    except BaseException:
        if out is not None:
            out.discard()  # no empty file left behind, and the file that was there is untouched
        raise
    finally:
        _put_back(previous, drop_pending=bool(came))


def _put_back(previous: dict[int, Any], drop_pending: bool) -> None:
    """Put the `previous` handlers back; after a stop, with the rest of its burst dropped (none reaches them)."""
    if not drop_pending or threading.current_thread() is not threading.main_thread():
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_ENDS)
    try:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _taken_pending({s for s in _HELD_ENDS if s not in before})
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


#: The signals `_ends_held` holds, in the order one is chosen when several came meanwhile: the strongest request.
_HELD_ENDS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


@contextmanager
def _ends_held() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP wait (blocked) until the body is done; then one of them arrives (in the main thread).

    A Ctrl-C while the output file is being opened would otherwise leave its temporary file behind. Of several that
    came meanwhile (Ctrl-C twice, then `timeout`'s SIGTERM), only the first of `_HELD_ENDS` is sent again, to the
    handlers in place: let through together, the second would break into the clean-up of the first (a traceback).
    Signals that were already blocked stay as they were (pending, for whoever blocked them).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are handled in the main thread only: nothing to hold here
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_ENDS)
    try:
        yield
    finally:
        came = _taken_pending({s for s in _HELD_ENDS if s not in before})
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
        _send_first(came)


def _taken_pending(held: set[signal.Signals]) -> set[int]:
    """The signals of `held` pending now, taken off (while still blocked), so that none is delivered on its own."""
    came: set[int] = set()
    if not hasattr(signal, "sigtimedwait"):  # pragma: no cover - macOS: they arrive together as before
        return came
    for signum in held & signal.sigpending():
        if signal.sigtimedwait([signum], 0) is not None:
            came.add(signum)
    return came


def _send_first(came: set[int]) -> None:
    """Send again the first signal of `_HELD_ENDS` in `came` not ignored here (SIGINT under `cmd &` stays ignored)."""
    for signum in _HELD_ENDS:
        if signum in came and signal.getsignal(signum) is not signal.SIG_IGN:
            signal.raise_signal(signum)  # its handler runs before this returns (KeyboardInterrupt, _Ended, ...)
            return


def _catch_ends(came: list[int]) -> dict[int, Any]:
    """SIGTERM and SIGHUP raise `_Ended`, SIGINT KeyboardInterrupt: the first only (noted in `came`), until put back.

    Ignored ones stay ignored (SIGINT under `cmd &`, `nohup`); nothing is caught outside the main thread. The
    handler only appends to a list: no lock (a `threading.Event`), no logging, no print, which a signal arriving
    inside them would deadlock or break.
    """

    def end(signum: int, frame: object) -> None:
        if came:
            return  # the rest of a burst: the first is being cleaned up and reported
        came.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt  # said `interrupted` by the error boundary, as everywhere
        raise _Ended(signum)

    previous: dict[int, Any] = {}
    try:
        for signum in _HELD_ENDS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, end)
    except ValueError:  # not the main thread: the run goes on without
        pass
    return previous


def emit_then_write(out: OutFile | None, results: Callable[[], str], contents: Callable[[], str]) -> None:
    """Print `results()` (on stderr when the file goes to stdout), then write `contents()` to the output file.

    The results come first: a late write failure, such as a full disk, must not cost them; it is exit 1.
    """
    try:
        if out is not None and out.to_stdout:
            sys.stderr.write(results())  # stdout carries the file
        else:
            emit(results())
    finally:
        if out is not None and out.to_stdout:
            emit(contents())
        elif out is not None:
            _write(out, contents)


def _write(out: OutFile, contents: Callable[[], str]) -> None:
    """`contents()` written to the output file, then closed; a FIFO or device is opened here (a FIFO waits for a reader).

    That wait is not held off: Ctrl-C (130) and SIGTERM (143) end it as they end the replay.
    """
    try:
        handle = out.handle if out.handle is not None else out.path.open("w", encoding="utf-8", newline="")
        with handle:
            write_whole(handle, contents())  # a pipe (`/dev/stdout | head`) cut mid-write: BrokenPipeError
        out.commit()
    except BrokenPipeError:
        raise  # --schedule-out /dev/stdout | head: ends quietly with 141, as every command does
    except OSError as error:
        out.discard()
        raise ActionFailed(
            f"cannot write {out.named}: {error.strerror or error}.",
            f"the results above are complete; free some space or give {out.option} another file.",
        ) from None
