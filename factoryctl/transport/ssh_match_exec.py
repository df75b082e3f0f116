"""`Match exec` in ~/.ssh/config, run as ssh runs it: once per node looked up, `$SHELL -c`, stdin /dev/null.

paramiko's `SSHConfig.lookup` runs each `Match exec` command through invoke at least twice per node (its lookup
takes two passes, and resolving a node takes several lookups), the second time with `%h` as the first pass left it,
and hands the command factoryctl's stdin (`exec -n` in a `while read` loop lost the rest of the list). `exec_once_config` gives an SSHConfig that runs each command, as written,
once per host within one `ssh_config.resolve` (`EXEC_RESULTS`), as ssh runs it once where the line stands. It
overrides paramiko's `_does_match` and uses its `_tokenize` (paramiko >= 3.3, which added `Match final`).
"""

from __future__ import annotations

import contextvars
import functools
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import paramiko


#: Within one `resolve`: whether each `Match exec` command (as written, by host looked up) exited 0.
EXEC_RESULTS: contextvars.ContextVar[dict[tuple[str, str], bool]] = contextvars.ContextVar("factoryctl_exec_results")


@functools.cache
def exec_once_config() -> type[paramiko.SSHConfig]:
    """An SSHConfig that runs `Match exec` as ssh does (module doc); the line's other criteria are paramiko's."""
    import paramiko

    class ExecOnceConfig(paramiko.SSHConfig):
        def _does_match(
            self, match_list: list[dict[str, Any]], host: str, canonical: bool, final: bool, options: dict[str, Any]
        ) -> object:
            parent: Any = super()
            if not any(criterion["type"] == "exec" for criterion in match_list):
                return parent._does_match(match_list, host, canonical, final, options)
            matched = True
            for criterion in match_list:  # in order, stopping at the first that fails, as paramiko and ssh do
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
                parent: Any = super()
                results[host, written] = matched_by_exec(parent._tokenize(options, host, "match-exec", written))
            return results[host, written]

    return ExecOnceConfig


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
