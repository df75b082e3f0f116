"""The fields of the job-rank requests (`launch`, `ranks`, `kill`, `logs`: docs/agent-protocol.md), checked.

A job id becomes a directory name on the node (`<root>/<job>/rank-<r>/`), so one that could leave the jobs root
(`../x`, `a/b`, `..`) or hide (`.x`) is refused before any path is made from it; so is every argument a process
could not be started with (a NUL byte, an `=` in a variable's name). Each refusal is a `usage` error: nothing
was done. Python 3.9 and the standard library only, like the rest of the agent.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional

from factoryctl.agent.protocol import RequestError

#: A job id: what `factoryctl.model.job_ids` makes (lowercase letters and digits) and more, but never a path.
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: The highest rank number a request may name (a gang of more nodes is no job of one factory).
MAX_RANK = 65535
#: The most bytes one `logs` request returns, and how many when it names no `limit`.
MAX_LOG_BYTES = 1024 * 1024
DEFAULT_LOG_BYTES = 64 * 1024
SIGNALS = ("TERM", "KILL")


def job_field(request: Mapping[str, Any], key: str = "job") -> str:
    """The request's job id: letters, digits, `_`, `.` and `-`, starting with a letter or digit (no path)."""
    return job_id(request.get(key))


def job_id(value: object) -> str:
    """`value` as a job id; a `usage` error when it is none (see JOB_ID)."""
    if not isinstance(value, str) or not JOB_ID.fullmatch(value):
        raise RequestError(
            "usage",
            "a job id must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit "
            f"(it names a directory on the node), not {_shown(value)}",
        )
    return value


def jobs_field(request: Mapping[str, Any]) -> Optional[List[str]]:
    """`ranks`'s `jobs`: a list of job ids, or None (absent or null) for every job on the node."""
    value = request.get("jobs")
    if value is None:
        return None
    if not isinstance(value, list):
        raise RequestError("usage", "jobs must be a list of job ids, or null for every job")
    return [job_id(item) for item in value]


def int_field(request: Mapping[str, Any], key: str, default: Optional[int], low: int, high: int) -> int:
    """The request's `key`, an integer from `low` to `high` (`default` when absent; required when that is None)."""
    value = request.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError("usage", f"{key} must be an integer from {low} to {high}")
    return int(value)


def rank_field(request: Mapping[str, Any]) -> int:
    """The request's `rank`: 0 or more."""
    return int_field(request, "rank", None, 0, MAX_RANK)


def argv_field(request: Mapping[str, Any]) -> List[str]:
    """`launch`'s `argv`: the command, a non-empty list of strings without NUL bytes (no shell reads it)."""
    argv = request.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(arg, str) for arg in argv):
        raise RequestError("usage", "argv must be a non-empty list of strings (the command and its arguments)")
    if not argv[0]:
        raise RequestError("usage", "argv's first string, the program, is empty")
    if any("\0" in arg for arg in argv):
        raise RequestError("usage", "argv must not contain a NUL byte")
    return argv


def env_field(request: Mapping[str, Any]) -> Dict[str, str]:
    """`launch`'s `env`: variable names (no `=`, no NUL) to string values (absent or null: none)."""
    env = request.get("env")
    if env is None:
        return {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise RequestError("usage", "env must be an object of variable names to string values")
    for name, value in env.items():
        if not name or "=" in name or "\0" in name or "\0" in value:
            raise RequestError("usage", f"env has a variable no process can be given: {_shown(name)}")
    return dict(env)


def rank_gpus_field(request: Mapping[str, Any], count: Optional[int]) -> List[int]:
    """`launch`'s `gpus`: distinct GPU indexes of this node (`count` GPUs; None when the driver cannot tell)."""
    gpus = request.get("gpus")
    if gpus is None:
        return []
    if not isinstance(gpus, list) or not all(isinstance(g, int) and not isinstance(g, bool) for g in gpus):
        raise RequestError("usage", "gpus must be a list of GPU indexes")
    if len(set(gpus)) != len(gpus):
        raise RequestError("usage", "gpus names a GPU twice")
    bad = [g for g in gpus if g < 0 or (count is not None and g >= count)]
    if bad:
        has = f" (it has GPUs 0-{count - 1})" if count else ""
        raise RequestError("usage", f"no GPU {bad[0]}{has}")
    return gpus


def cwd_field(request: Mapping[str, Any]) -> Optional[str]:
    """`launch`'s `cwd`: a directory, or None (absent, null or "") for the user's home."""
    cwd = request.get("cwd")
    if cwd is None or cwd == "":
        return None
    if not isinstance(cwd, str) or "\0" in cwd:
        raise RequestError("usage", "cwd must be a directory's path, or null for the home directory")
    return cwd


def signal_field(request: Mapping[str, Any]) -> str:
    """`kill`'s `signal`: TERM (the default) or KILL."""
    value = request.get("signal", "TERM")
    if value not in SIGNALS:
        raise RequestError("usage", f"signal must be TERM or KILL, not {_shown(value)}")
    return str(value)


def _shown(value: object) -> str:
    """`value` for a message: short, and never a line break (the message is one sentence)."""
    text = repr(value)
    return text if len(text) <= 70 else text[:67] + "..."
