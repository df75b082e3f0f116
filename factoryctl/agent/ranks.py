"""A node's job ranks: launched detached, found again by any later agent, signalled and read (docs/agent-protocol.md).

The controller's agent session ends, the SSH connection drops, the agent is upgraded: a rank must outlive all of
that, and the next agent must still tell whether it runs and how it ended. So nothing about a rank lives in the
agent: each has a directory `<root>/<job>/rank-<r>/` holding `record.json` (pid, pgid, argv, gpus, started_at and
the processes' start times, and the rank's mark: factoryctl.agent.rank_procs), `output.log` (stdout and stderr
together), `exit` (its exit status, 128+N for a signal N, written by the rank's wrapper, factoryctl.agent.rank_run,
when the command ends; blank until then) and, once a `kill` sent it SIGKILL, `killed` (when). The
root is per node (several inventory nodes may share one host): under the simulated node's state
(`<state_dir>/<factory>/<node>.jobs`) with `--sim`, else `$XDG_STATE_HOME/factoryctl/agent/<factory>/<node>/jobs`.
A disk too full for a rank's files is the node's failure (`agent`), said in one sentence, and leaves nothing running.

A pid is reused once its process is gone, so a record's pid counts as the rank only while its start time (from
/proc) is still the recorded one. A rank's processes are its group's and every one carrying its mark, also one that
left the group (`setsid`). One that outlives its SIGKILL (state D) is reported, and no other launch starts on its
GPUs while it lives. Python 3.9 and the standard library, like the rest of the agent.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import factoryctl
from factoryctl.agent.protocol import RequestError
from factoryctl.agent.rank_fields import JOB_ID
from factoryctl.agent.rank_lingering import carried_marks, located_mark
from factoryctl.agent.rank_procs import (
    MARK_VARIABLE,
    RankKey,
    RankProcess,
    Wanted,
    is_process,
    live_group,
    own_group,
    proc_readable,
    rank_processes,
    running_for,
)
from factoryctl.agent.rank_procs import start_ticks as start_ticks  # where the tests and older callers find it

#: How long a node keeps an ended launch's rank records and output (`prune_ended`): two weeks of `jobs logs`.
KEEP_ENDED_S = 14 * 86400.0

#: How long a launch waits for its wrapper to say the command started (or why it could not).
LAUNCH_TIMEOUT_S = 30.0

#: How long a launch waits for the processes of a killed rank on its GPUs to end (`_refuse_survivors`).
SURVIVOR_WAIT_S = 5.0


def jobs_root(factory: str, node: str, sim_state_dir: Optional[str]) -> Path:
    """Where this node's ranks live (module docstring); absolute, as a wrapper runs in another directory."""
    from factoryctl.sim.storage import safe_name, state_path

    if sim_state_dir is not None:
        return Path(os.path.abspath(state_path(sim_state_dir, factory, node).with_suffix(".jobs")))
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(os.path.abspath(base)) / "factoryctl" / "agent" / safe_name(factory) / safe_name(node) / "jobs"


def _self_command() -> Tuple[List[str], Tuple[int, ...]]:
    """How to run this agent's `rank-run` tool, and the descriptors it must inherit to find the agent's code.

    A zipapp agent runs the zipapp again; one reached through `/proc/self/fd/<fd>/` (a held temporary directory,
    factoryctl.transport.bundle) passes that descriptor on, under the same number. Else the installed package.
    """
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(factoryctl.__file__)))
    if os.path.isfile(package_parent):
        held = re.match(r"/proc/self/fd/(\d+)/", package_parent)
        return [sys.executable, package_parent, "rank-run"], ((int(held.group(1)),) if held else ())
    return [sys.executable, "-m", "factoryctl.agent", "rank-run"], ()


class RankStore:
    """The job ranks of one node under `root`; `sim` names the simulated node whose GPUs show their load."""

    def __init__(self, root: Path, sim: Optional[Dict[str, str]] = None) -> None:
        """`sim` is `{state_dir, factory, node}` on a simulated node, None on a real one."""
        self.root = root
        self.sim = sim

    # -- paths and records ---------------------------------------------------------------------------------------

    def rank_dir(self, job: str, rank: int) -> Path:
        """The directory of rank `rank` of job `job` (both checked by factoryctl.agent.rank_fields)."""
        return self.root / job / f"rank-{rank}"

    def _record(self, directory: Path) -> Optional[Dict[str, Any]]:
        try:
            record = json.loads((directory / "record.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def _rank_dirs(self, jobs: Optional[List[str]]) -> Iterator[Tuple[str, int, Path]]:
        """(job, rank, directory) of every launched rank of `jobs` (None: every job), in job then rank order."""
        try:
            names = sorted(jobs if jobs is not None else os.listdir(self.root))
        except OSError:
            return
        for job in dict.fromkeys(names):
            with contextlib.suppress(OSError):
                ranks = sorted(
                    int(entry[5:])
                    for entry in os.listdir(self.root / job)
                    if entry.startswith("rank-") and entry[5:].isdigit()
                )
                for rank in ranks:
                    yield job, rank, self.rank_dir(job, rank)

    @staticmethod
    def _exit(directory: Path) -> Tuple[Optional[int], Optional[float]]:
        """The exit status the wrapper wrote, and when (None, None while it has not)."""
        try:
            path = directory / "exit"
            return int(path.read_text(encoding="ascii").strip()), os.stat(path).st_mtime
        except (OSError, ValueError):
            return None, None

    def _running(self, record: Dict[str, Any], directory: Path) -> bool:
        """Running until its exit status is written, or nobody is left to write it.

        The command lives, or its wrapper does (which writes it in a moment). A wrapper killed with SIGKILL leaves
        none: then not running, exit null.
        """
        return self._exit(directory)[0] is None and (
            is_process(record.get("pid"), record.get("start_ticks"))
            or is_process(record.get("wrapper_pid"), record.get("wrapper_start_ticks"))
        )

    def _statuses(self, found: List[Tuple[str, int, Path, Dict[str, Any]]]) -> List[Dict[str, Any]]:
        """Each rank as `ranks` answers it, its processes found in one pass over /proc (`rank_procs`).

        `group_running`: a process of the rank still lives, in its group or carrying its mark (what a `sh -c`
        launcher started, after it ended; a worker that left the group with `setsid`). `survivors`: those still
        alive after the rank's SIGKILL (`killed_at`): a process in state D (uninterruptible I/O) outlives it.
        """
        running = {(job, rank): self._running(record, directory) for job, rank, directory, record in found}
        killed = {(job, rank): _killed_at(directory) for job, rank, directory, _ in found}
        asked = [(job, rank, record) for job, rank, _, record in found if not running[job, rank] or killed[job, rank]]
        processes = self._processes(asked)
        statuses = []
        for job, rank, directory, record in found:
            key = (job, rank)
            alive = processes.get(key, [])
            code, ended = self._exit(directory)
            statuses.append(
                {
                    "job": job,
                    "rank": rank,
                    "pid": record.get("pid"),
                    "running": running[key],
                    "group_running": running[key] or bool(alive),
                    "exit_code": code,
                    "started_at": record.get("started_at"),
                    "ended_at": ended,
                    "gpus": record.get("gpus", []),
                    "running_s": running_for(record.get("start_ticks")) if running[key] else None,
                    "killed_at": killed[key],
                    "survivors": [{"pid": p.pid, "state": p.state} for p in alive] if killed[key] else [],
                }
            )
        return statuses

    @staticmethod
    def _processes(ranks: List[Tuple[str, int, Dict[str, Any]]]) -> Dict[RankKey, List[RankProcess]]:
        """The live processes of each (job, rank, record): its group's and those carrying its mark.

        Without /proc, a rank whose group lives gets its leader's pid (state `?`): the group is all that is known.
        """
        if not proc_readable():
            groups = {(job, rank): live_group(record) for job, rank, record in ranks}
            return {key: [RankProcess(pgid, "?", 0, pgid)] for key, pgid in groups.items() if pgid is not None}
        return rank_processes({(job, rank): _wanted(record) for job, rank, record in ranks})

    # -- ops -----------------------------------------------------------------------------------------------------

    def ranks(self, jobs: Optional[List[str]], running_only: bool = False) -> List[Dict[str, Any]]:
        """`ranks`: every launched rank of `jobs` (None: of every job on the node); the live ones if `running_only`.

        Live: still `running`, or ended with a process left (`group_running`: a worker that left the group), which
        holds GPUs as much. An ended rank's record is read only when a live process carries its mark
        (`rank_lingering`): a pass sweeps every node it works on, and a node keeps thousands of ended ranks.
        """
        carried = carried_marks() if running_only else None
        found = []
        for job, rank, directory in self._rank_dirs(jobs):
            if carried is not None and not carried.may_linger((job, rank)) and self._exit(directory)[0] is not None:
                continue  # ended, as its exit file says, and no process carries its mark: no record to read
            record = self._record(directory)
            if record is None:
                continue
            if carried is None or self._running(record, directory) or carried.may_linger((job, rank), record):
                found.append((job, rank, directory, record))
        statuses = self._statuses(found)
        return statuses if carried is None else [status for status in statuses if status["group_running"]]

    def kill(self, job: str, signal_name: str) -> List[int]:
        """`kill`: signal each rank's processes, its group and those carrying its mark; the ranks signalled.

        Also a group whose command ended but whose children live on, and a worker that left it (`setsid`); never a
        group whose number a later process took, nor a pid reused since it was read. A rank sent SIGKILL has the
        time written in its `killed` file, the first time: its `survivors` are counted from then.
        """
        signum = signal.SIGKILL if signal_name == "KILL" else signal.SIGTERM
        records = [(rank, directory, self._record(directory)) for _, rank, directory in self._rank_dirs([job])]
        found = [(job, rank, record) for rank, _, record in records if record is not None]
        processes = self._processes(found)
        signalled = []
        for rank, directory, record in records:
            if record is not None and _signal_rank(record, processes.get((job, rank), []), signum):
                signalled.append(rank)
                if signum == signal.SIGKILL and _killed_at(directory) is None:
                    with contextlib.suppress(OSError):  # a full disk: the kill stands, only its time is not kept
                        (directory / "killed").write_text(f"{time.time()!r}\n", encoding="ascii")
        return signalled

    def power_cut(self) -> List[str]:
        """A simulated reboot: every running rank's group and its wrapper SIGKILLed, as a power cut ends them.

        No exit status is written (nobody is left to write it), so the executor finds each rank ended without one,
        as after a real reboot. Returns the launches hit.
        """
        hit = []
        for status in self.ranks(None, running_only=True):
            directory = self.rank_dir(status["job"], status["rank"])
            record = self._record(directory) or {}
            wrapper = record.get("wrapper_pid")
            if isinstance(wrapper, int) and is_process(wrapper, record.get("wrapper_start_ticks")):
                with contextlib.suppress(OSError):
                    os.kill(wrapper, signal.SIGKILL)
            self.kill(status["job"], "KILL")
            hit.append(status["job"])
        return sorted(set(hit))

    def logs(self, job: str, rank: int, offset: int, limit: int) -> Dict[str, Any]:
        """`logs`: up to `limit` bytes of the rank's output from `offset` (below 0: that far from the end).

        Decoded as UTF-8 with replacement; a character cut by `limit` is left for the next read, whose start the
        answer's `offset` is.
        """
        directory = self.rank_dir(job, rank)
        if self._record(directory) is None:
            raise RequestError("usage", f"job {job} has no rank {rank} on this node")
        try:
            with open(directory / "output.log", "rb") as f:
                size = os.fstat(f.fileno()).st_size
                start = max(0, size + offset) if offset < 0 else min(offset, size)
                f.seek(start)
                data = f.read(limit)
        except FileNotFoundError:
            return {"data": "", "offset": 0, "size": 0}
        cut = _cut_character(data) if len(data) == limit else 0
        if cut < len(data):  # a read of only a cut character's start takes it (replaced): every read moves on
            data = data[: len(data) - cut]
        return {"data": data.decode("utf-8", "replace"), "offset": start + len(data), "size": size}

    def launch(self, job: str, rank: int, spec: Dict[str, Any]) -> Dict[str, Any]:
        """`launch`: start the rank unless it was (then its record, `already` true); `spec` as rank_run reads it.

        Launches of one job take turns on a lock in its directory, so two agents asked at once start it once. A
        directory left without a record (a launch that failed, an agent killed midway) is started again.
        """
        self.prune_ended(job)
        home = os.path.expanduser("~")
        cwd = os.path.join(home, spec["cwd"]) if spec["cwd"] else home  # a relative one from the home, too
        if not os.path.isdir(cwd):
            raise RequestError("usage", f"cannot start the rank: its directory {cwd} does not exist")
        job_dir = self.root / job
        try:
            job_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            with self._launch_lock(job_dir):
                return self._launch_once(job, rank, spec, cwd)
        except OSError as exc:  # the node's disk, not the command: said in one sentence, never a Python repr
            raise RequestError(
                "agent", f"cannot start the rank: {_disk_error(self.rank_dir(job, rank), exc)}"
            ) from None

    def prune_ended(self, keep: str, now: Optional[float] = None) -> List[str]:
        """Remove the launches (`<job>.<start>` directories) every rank of which ended over KEEP_ENDED_S ago.

        A node keeps each launch's output that long for `jobs logs`; past it, a node that ran jobs for a year would
        otherwise list and read a year of launches every time a pass sweeps it. A launch with a rank still running,
        or without an exit status yet, is kept, and so is `keep` (the launch being made) and every job's
        `checkpoint` directory (`<id>` without a dot: the user's data). Returns the launches removed.
        """
        cutoff = (time.time() if now is None else now) - KEEP_ENDED_S
        removed = []
        with contextlib.suppress(OSError):
            for name in os.listdir(self.root):
                if "." not in name or name == keep:
                    continue
                ended = [self._exit(self.rank_dir(name, rank))[1] for _, rank, _ in self._rank_dirs([name])]
                if ended and all(t is not None and t < cutoff for t in ended):
                    shutil.rmtree(self.root / name, ignore_errors=True)
                    removed.append(name)
        return removed

    def _launch_once(self, job: str, rank: int, spec: Dict[str, Any], cwd: str) -> Dict[str, Any]:
        """`launch` under the job's lock: the rank's record when it was launched, else the wrapper's answer."""
        directory = self.rank_dir(job, rank)
        record = self._record(directory)
        if record is not None:
            return {"pid": record.get("pid"), "started_at": record.get("started_at"), "already": True}
        if os.path.lexists(directory):
            shutil.rmtree(directory)
        self._refuse_survivors(job, spec["gpus"])
        checkpoint = self._checkpoint_dir(job, spec["env"])
        mark = located_mark(job, rank)
        env = self._environment(spec["env"], checkpoint, mark)
        directory.mkdir(mode=0o700)
        try:
            started = self._run_wrapper(directory, {**spec, "cwd": cwd, "env": env, "sim": self.sim, "mark": mark})
        except (RequestError, OSError):
            if self._record(directory) is None:  # nothing started: no half rank (nor its environment) left
                shutil.rmtree(directory, ignore_errors=True)
            raise
        if "error" in started:
            shutil.rmtree(directory, ignore_errors=True)
            why = f"cannot start the rank: {started['error']}"
            raise RequestError("agent", why) if started.get("kind") == "agent" else RequestError("usage", why)
        return {"pid": started.get("pid"), "started_at": started.get("started_at"), "already": False}

    def _checkpoint_dir(self, job: str, env: Dict[str, str]) -> Path:
        """`<root>/<job>/checkpoint`, the job being the rank's FACTORY_JOB_ID when it has one (a valid id).

        The executor launches each restart of a job under a name of its own (`<id>.<start>`); its checkpoints must
        outlive the launch that wrote them, so they are kept under the job's id, which every launch shares.
        """
        owner = env.get("FACTORY_JOB_ID", job)
        if not JOB_ID.fullmatch(owner):
            owner = job
        (self.root / owner).mkdir(exist_ok=True, mode=0o700)
        checkpoint = self.root / owner / "checkpoint"
        checkpoint.mkdir(exist_ok=True, mode=0o700)
        return checkpoint

    # -- launching -----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _launch_lock(self, job_dir: Path) -> Iterator[None]:
        fd = os.open(job_dir / ".launch-lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _environment(self, requested: Dict[str, str], checkpoint: Path, mark: str) -> Dict[str, str]:
        """The command's environment: the agent's, FACTORY_CHECKPOINT_DIR and the sim's node, then the request's.

        The rank's mark (`rank_procs`) comes first, where a search of the environment finds it soonest, and is
        ours: neither the agent's environment (an agent started by a rank) nor the request's replaces it.
        """
        env = {MARK_VARIABLE: mark, **os.environ}
        env["FACTORY_CHECKPOINT_DIR"] = str(checkpoint)
        if self.sim is not None:  # so a `sim-rank` command finds its node
            env["FACTORYCTL_SIM_NODE"] = self.sim["node"]
            env["FACTORYCTL_SIM_FACTORY"] = self.sim["factory"]
            env["FACTORYCTL_SIM_STATE_DIR"] = self.sim["state_dir"]
        env.update(requested)
        env[MARK_VARIABLE] = mark
        return env

    def _refuse_survivors(self, job: str, gpus: List[int]) -> None:
        """Refuse to start a rank on GPUs where another launch's rank still has processes after its SIGKILL.

        Processes just killed take a moment to end (a GPU's memory to be freed): they are waited for, up to
        SURVIVOR_WAIT_S. One still alive then is stuck (in state D: a hung file system or driver call, which no
        signal ends) and holds the GPU: the rank would fail on it, or share it. The launch is the node's failure
        (`agent`): the executor requeues the gang and keeps the node out of placements for a while.
        """
        deadline = time.monotonic() + SURVIVOR_WAIT_S
        held = self._survivors_on(job, set(gpus))
        while held and time.monotonic() < deadline:
            time.sleep(0.1)
            held = self._survivors_on(job, set(gpus))
        if held:
            raise RequestError("agent", f"cannot start the rank: {_survivors_text(held[0], set(gpus))}")

    def _survivors_on(self, job: str, gpus: Set[int]) -> List[Dict[str, Any]]:
        """The ranks of other launches on any of `gpus` that were sent SIGKILL and still have processes."""
        if not gpus:
            return []
        killed = []
        for other, rank, directory in self._rank_dirs(None):
            if other != job and os.path.exists(directory / "killed"):
                record = self._record(directory)
                if record is not None and gpus & set(record.get("gpus") or ()):
                    killed.append((other, rank, directory, record))
        return [status for status in self._statuses(killed) if status["survivors"]]

    def _run_wrapper(self, directory: Path, spec: Dict[str, Any]) -> Dict[str, Any]:
        """Run the wrapper on `directory` and wait for its one line: the rank's pid and start, or an `error`."""
        spec_path = directory / "spec.json"
        fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # the environment may hold secrets
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(spec, f)
        command, keep = _self_command()
        try:
            done = subprocess.run(
                [*command, str(directory)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=str(directory),
                pass_fds=keep,
                start_new_session=True,
                timeout=LAUNCH_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RequestError("agent", f"the rank's wrapper did not start: {exc}") from None
        try:
            answer = json.loads(done.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
        except (ValueError, IndexError):
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
            raise RequestError("agent", f"the rank's wrapper failed: {said[0]}") from None
        return answer if isinstance(answer, dict) else {"error": "the rank's wrapper answered no object"}


def _signal_rank(record: Dict[str, Any], processes: List[RankProcess], signum: int) -> bool:
    """Signal the rank's group while a member lives, and each of its marked processes outside it; whether any was."""
    group = own_group(record)
    sent = False
    if group is not None and any(p.pgid == group for p in processes):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)
            sent = True
    for process in processes:
        if process.pgid != group and start_ticks(process.pid) == process.start_ticks:  # not a pid reused since
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(process.pid, signum)
                sent = True
    return sent


def _killed_at(directory: Path) -> Optional[float]:
    """When the rank was first sent SIGKILL (its `killed` file, Unix seconds); None when it never was."""
    try:
        return float((directory / "killed").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None


def _wanted(record: Dict[str, Any]) -> Wanted:
    """What finds the rank's processes: its group, its mark (none from an agent before marks), its command's start."""
    mark, since = record.get("mark"), record.get("start_ticks")
    return Wanted(
        own_group(record),
        mark if isinstance(mark, str) and mark else None,
        since if isinstance(since, int) and not isinstance(since, bool) else None,
    )


def _survivors_text(status: Dict[str, Any], gpus: Set[int]) -> str:
    """Which of `gpus` a killed rank still holds, and with what, in one sentence for the launch's refusal."""
    shared = sorted(gpus & set(status["gpus"]))
    processes = ", ".join(f"{p['pid']} (state {p['state']})" for p in status["survivors"][:3])
    more = f" and {len(status['survivors']) - 3} more" if len(status["survivors"]) > 3 else ""
    since = max(0, round(time.time() - status["killed_at"]))
    return (
        f"GPU{'s' if len(shared) > 1 else ''} {','.join(map(str, shared))} still run{'' if len(shared) > 1 else 's'}"
        f" processes of launch {status['job']} rank {status['rank']}, {since} s after their SIGKILL: pid"
        f"{'s' if len(status['survivors']) > 1 else ''} {processes}{more}; a process in state D (uninterruptible"
        " I/O: a hung file system or driver call) ends only when that call returns"
    )


def _disk_error(directory: Path, exc: OSError) -> str:
    """Why a rank's files under `directory` cannot be written, in words (the wrapper says it alike)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on {directory} for its record"
    return f"its record cannot be written in {directory}: {exc.strerror or exc}"


def _cut_character(data: bytes) -> int:
    """How many bytes at the end of `data` begin a UTF-8 character that the next bytes would finish (0 to 3)."""
    for back in range(1, min(3, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # the last character's first byte: is the character longer than what is here?
            needed = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4 if byte & 0xF8 == 0xF0 else 1
            return back if needed > back else 0
    return 0
