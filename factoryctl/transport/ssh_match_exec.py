"""`Match` in ~/.ssh/config as ssh evaluates it: `exec` run once per node looked up, unknown criteria never matched.

paramiko's `SSHConfig.lookup` runs each `Match exec` command through invoke at least twice per node (its lookup
takes two passes, and resolving a node takes several lookups), the second time with `%h` as the first pass left it,
and hands the command factoryctl's stdin (`exec -n` in a `while read` loop lost the rest of the list). `exec_once_config` gives an SSHConfig that runs each command, as written,
once per host within one `ssh_config.resolve` (`EXEC_RESULTS`), as ssh runs it once where the line stands. It
overrides paramiko's `_does_match` (paramiko >= 3.3, which added `Match final`). Its tokens are put in as ssh's
percent_expand puts them, in one pass (`expand_tokens`): paramiko's `_tokenize` replaces one token after another,
so the text one put in was expanded again by the tokens after it (host `fe80::1%u` became `fe80::1root`), and it
leaves `%%` as two. The values are paramiko's; `~` is not expanded, by ssh nor paramiko (the shell may).

paramiko also counts a criterion it does not know (`localnetwork`, `tagged`, a typo, `Host` in capitals) as
matched, which applied its block (a ProxyJump, say) to every host. ssh_config.py writes the criteria through
`evaluable`: types in lower case, as ssh reads them in any case, and any other as `REFUSED`; reaching one (every
criterion before it on the line matched) raises `RefusedCriterion`, a config error naming its line (`refused_error`).
"""

from __future__ import annotations

import contextvars
import functools
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from factoryctl.errors import ConfigError

if TYPE_CHECKING:
    import paramiko


#: The Match criteria paramiko evaluates, in the lower case `evaluable` writes them in.
EVALUATED = ("all", "canonical", "final", "exec", "host", "originalhost", "user", "localuser")
#: The type `evaluable` gives a criterion of any other type; its value says which line and keyword it was.
REFUSED = "factoryctlrefused"
#: Match criteria of ssh that factoryctl does not evaluate (any other word is a mistake ssh refuses too).
_SSH_ONLY = ("localnetwork", "tagged", "command", "version", "sessiontype")
_EVALUATED = "factoryctl evaluates Match host, originalhost, user, localuser, exec, canonical, final and all"
_SSH_ONLY_HINT = (
    f"write a Host block for the hosts it is meant for, or remove it: {_EVALUATED}, and a Match line stops at its "
    "first criterion that fails (`Match host laptop-* localnetwork ...` is never evaluated for other hosts)."
)


class RefusedCriterion(Exception):
    """A `REFUSED` criterion was reached for a host: `value` is what `evaluable` wrote as its value."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


def evaluable(pairs: tuple[tuple[str, ...], ...], index: int) -> tuple[tuple[str, ...], ...]:
    """A Match line's criteria `pairs` (type, pattern) as paramiko is to evaluate them (module doc).

    Types in lower case; one it cannot evaluate as (REFUSED, `index:type`), `index` being the line's (its origin).
    """
    out: list[tuple[str, ...]] = []
    for kind, *pattern in pairs:
        negate, bare = kind.startswith("!"), kind.removeprefix("!")
        known = bare.lower() in EVALUATED
        out.append(("!" * negate + bare.lower(), *pattern) if known else (REFUSED, f"{index}:{bare}"))
    return tuple(out)


def refused_error(value: str, alias: str, origins: tuple[str, ...]) -> ConfigError:
    """The config error of the REFUSED criterion `value` reached for host `alias`; `origins`: where lines come from."""
    index, _, kind = value.partition(":")
    where = origins[int(index)]
    if kind.lower() in _SSH_ONLY:
        problem = f"factoryctl does not support `Match {kind}`, so it cannot tell whether the block applies to host"
        return ConfigError(f"{where}: {problem} {alias}.", _SSH_ONLY_HINT)
    problem = (
        f"`Match {kind}` (for host {alias}) is not a criterion ssh knows (ssh refuses it too: Bad Match condition)"
    )
    return ConfigError(f"{where}: {problem}.", f"correct or remove it: {_EVALUATED} (in any case).")


#: Within one `resolve`: whether each `Match exec` command (as written, by host looked up) exited 0.
EXEC_RESULTS: contextvars.ContextVar[dict[tuple[str, str], bool]] = contextvars.ContextVar("factoryctl_exec_results")


@functools.cache
def exec_once_config() -> type[paramiko.SSHConfig]:
    """An SSHConfig that runs `Match exec` as ssh does and stops at a `REFUSED` criterion (module doc).

    The line's other criteria are paramiko's.
    """
    import paramiko

    class ExecOnceConfig(paramiko.SSHConfig):
        def _does_match(
            self, match_list: list[dict[str, Any]], host: str, canonical: bool, final: bool, options: dict[str, Any]
        ) -> object:
            parent: Any = super()
            if not any(criterion["type"] in ("exec", REFUSED) for criterion in match_list):
                return parent._does_match(match_list, host, canonical, final, options)
            matched = True
            for criterion in match_list:  # in order, stopping at the first that fails, as paramiko and ssh do
                if criterion["type"] == REFUSED:
                    raise RefusedCriterion(criterion["param"])
                if criterion["type"] == "exec":
                    matched = self._exec(host, criterion["param"], options) != criterion["negate"]
                else:
                    matched = bool(parent._does_match([criterion], host, canonical, final, options))
                if not matched:
                    break
            return matched

        def _exec(self, host: str, written: str, options: dict[str, Any]) -> bool:
            results = EXEC_RESULTS.get({})  # outside `resolve`: nothing kept
            if (host, written) not in results:
                results[host, written] = matched_by_exec(expand_tokens(written, exec_tokens(options, host)))
            return results[host, written]

    return ExecOnceConfig


#: A token of ssh's (`%h`), or `%%`; a `%` ending the text is none.
_TOKEN = re.compile(r"%(.)", re.DOTALL)


def expand_tokens(text: str, values: Mapping[str, Callable[[], str]]) -> str:
    """`text` with each `%X` of `values` replaced by its value, in one pass as ssh's percent_expand.

    What a token put in is not read again. `%%` is one `%`; a token not in `values` stays as written (ssh refuses it).
    """

    def value(found: re.Match[str]) -> str:
        letter = found[1]
        if letter == "%":
            return "%"
        make = values.get(letter)
        return found[0] if make is None else make()

    return _TOKEN.sub(value, text)


def exec_tokens(options: Mapping[str, Any], host: str) -> dict[str, Callable[[], str]]:
    """The tokens of a `Match exec` command for `host`, with the `options` read so far, valued as paramiko values them.

    These are paramiko's `_tokenize` table for match-exec; each is made only if used (`%l` may ask DNS). `%h` is
    HostName if set so far, its own `%h` expanded first (as ssh does), else `host`.
    """
    import getpass
    import hashlib
    import socket

    from paramiko.config import SSH_PORT, LazyFqdn

    config: Any = options  # paramiko's SSHConfigDict
    local = socket.gethostname().split(".")[0]
    user = getpass.getuser()
    remote = str(options.get("user", user))
    port = options.get("port", SSH_PORT)
    hostname = expand_tokens(str(options.get("hostname", host)), {"h": lambda: host})
    return {
        "C": lambda: hashlib.sha1((local + host + repr(port) + remote).encode()).hexdigest(),
        "d": lambda: os.path.expanduser("~"),
        "h": lambda: hostname,
        "L": lambda: local,
        "l": lambda: str(LazyFqdn(config, local)),
        "n": lambda: host,
        "p": lambda: str(port),
        "r": lambda: remote,
        "u": lambda: user,
    }


def matched_by_exec(command: str) -> bool:
    """Whether a `Match exec` command exits 0, run as ssh runs it: `$SHELL -c`, stdin and stdout /dev/null."""
    import subprocess

    shell = os.environ.get("SHELL") or "/bin/sh"
    try:
        done = subprocess.run([shell, "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=False)
    except OSError as exc:  # ssh: `Shell "..." is not executable`, and the block does not match
        sys.stderr.write(f"factoryctl: Match exec: cannot run {shell}: {exc.strerror or exc}\n")
        return False
    return done.returncode == 0
