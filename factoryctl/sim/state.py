"""Persisted state of one simulated node, shared by every process that drives it.

One JSON file per node, `<state_dir>/<factory>/<node>.json`, replaced atomically and changed only under an
`fcntl` lock beside it, so the controller, one-shot commands, job ranks and the nvidia-smi shim see one machine: a
limit set by one process is read by the next. `SimNode` is that sharing: it loads, repairs, locks and writes the
file and hands out readings. What the file holds is `state_layout.py`; everything not in it is recomputed from
elapsed time (`catch_up.py`, over `physics.py`); job ranks are `rank_registry.py`; readings are `readings.py`.
Long-lived readers write a fresh checkpoint every few minutes so a new process never has far to catch up.

The file can be edited by hand, so it is not trusted: a power limit outside the GPU's range (or not a number) is
reset to the default, as no driver reports one, and a file that cannot be used is moved aside (`<name>.json.bad`)
rather than silently overwritten; each with a warning on stderr naming the file (`state_checks.py`).
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, TypeVar

from factoryctl.sim import rank_registry
from factoryctl.sim.catch_up import Conditions, Cursor, advance, checkpoint_cursor, checkpoint_of
from factoryctl.sim.faults import FAULTS, apply_fault, check_fault, check_reportable
from factoryctl.sim.physics import GpuPhysics
from factoryctl.sim.profiles import DeviceProfile, get_profile
from factoryctl.sim.readings import GpuReading, ReadingInputs, SimProcess, gpu_reading, gpu_uuid
from factoryctl.sim.state_checks import has_bad_limit, reset_bad_limits, set_aside, well_formed
from factoryctl.sim.state_layout import DEFAULT_PROFILE, KEEP, STATE_VERSION, WORKLOADS, new_gpu, reconcile
from factoryctl.sim.storage import (
    FileLock,
    default_state_dir,
    read_json,
    stat_identity,
    state_path,
    unchanged_since,
    write_json,
)

__all__ = ["FAULTS", "WORKLOADS", "GpuReading", "SimNode", "SimProcess", "default_state_dir", "gpu_uuid", "state_path"]

CHECKPOINT_EVERY_S = 300
READING_TTL_S = 0.05  # one sample's dozen getters share one reading
#: A change of the wall clock against the monotonic one by more than this is a step (NTP, the RTC), not a slew.
CLOCK_STEP_S = 2.0
_BOOT_ID = "/proc/sys/kernel/random/boot_id"  # the monotonic clock's boot: processes of one boot share it

_T = TypeVar("_T")  # what a committed change returns


class SimNode:
    """One simulated node: open (or create) its persisted state and read or change its GPUs.

    Arguments left as None keep what the state file says (the nvidia-smi shim passes none); a different profile or
    GPU count re-creates the node's hardware, while seed, workload, unsupported fields and `setters_need_root` (the
    driver refuses a setter to a process whose euid is not 0, as NVML does: factoryctl.sim.nvml) are updated in place.
    """

    def __init__(
        self,
        state_dir: "os.PathLike[str] | str | None",
        node: str,
        factory: str = "default",
        profile: Optional[str] = None,
        gpus: Optional[int] = None,
        seed: Optional[int] = None,
        unsupported: Optional[Sequence[str]] = None,
        workload: Optional[str] = None,
        clock: Optional[Callable[[], float]] = None,
        setters_need_root: Optional[bool] = None,
        monotonic: Optional[Callable[[], float]] = None,
    ) -> None:
        if gpus is not None and not 0 <= gpus <= 64:
            raise ValueError(f"a simulated node has 0 to 64 GPUs, not {gpus}")
        if workload is not None and workload not in WORKLOADS:
            raise ValueError(f"unknown workload {workload!r}; known: {', '.join(WORKLOADS)}")
        if profile is not None:
            get_profile(profile)
        self.factory = factory
        self.node = node
        self.path = state_path(state_dir if state_dir is not None else default_state_dir(), factory, node)
        self.lock_path = self.path.with_suffix(".lock")
        self._clock = clock or time.time
        # what tells a step of `clock` (`_now`): the real monotonic clock for the real wall clock, else only if given
        self._monotonic = monotonic if monotonic is not None or clock is not None else time.monotonic
        self._frame: Optional[float] = None  # wall - monotonic clock the loaded times are on (None: not known)
        self._lock = threading.RLock()
        self._data: Dict[str, Any] = {}
        self._identity: Optional[Tuple[int, int, int]] = None
        self._physics: List[GpuPhysics] = []
        self._cursors: List[Cursor] = []
        self._profile: DeviceProfile = get_profile(DEFAULT_PROFILE)
        self._extra: Tuple[int, Dict[int, Tuple[float, float]]] = (-1, {})
        self._dead_ranks = False  # a registered rank's pid is gone (seen by `_extra_load`)
        self._ending: Set[int] = set()  # pids whose end `_watch` is banking: alive until that checkpoint
        self._readings: Dict[int, Tuple[float, Optional[Tuple[int, int, int]], GpuReading]] = {}
        wanted = {"profile": profile, "gpus": gpus, "seed": seed, "workload": workload, "unsupported": unsupported}
        wanted["setters_need_root"] = None if setters_need_root is None else bool(setters_need_root)
        with self._lock, FileLock(self.lock_path):
            repaired = self._load_checked()
            self._adopt_clock()
            if self._reconcile(wanted) or repaired:
                self._write()
            self._rebuild()

    # -- persistence -------------------------------------------------------------------------------------------

    def _load(self) -> None:
        """Read the state without the lock (writers replace it atomically); `{}` when missing or unusable."""
        self._data, self._identity = read_json(self.path, STATE_VERSION)
        if self._data and not well_formed(self._data):
            self._data = {}

    def _load_checked(self) -> bool:
        """Under the file lock: read the state, set an unusable file aside, reset limits a driver would not report.

        Returns True when the state must be written back (a limit was reset).
        """
        self._load()
        if not self._data and self._identity is not None:
            set_aside(self.path)
            self._identity = None
        return bool(self._data) and reset_bad_limits(self.path, self._data)

    def _write(self) -> None:
        if self._frame is not None and _boot_id() is not None:  # else the record stays as read: the times are as read
            self._data["clock"] = {"wall_minus_mono": self._frame, "boot": _boot_id()}
        self._identity = write_json(self.path, self._data)

    def _adopt_clock(self) -> None:
        """Take the times just loaded as on the wall clock their writer read, and a step of it since out of them.

        The file records the wall clock less the monotonic one (and the boot: a monotonic clock restarts with it) as
        it was when written; another process of the same boot reading it after a step sees the difference (`_now`).
        """
        record = self._data.get("clock")
        self._frame = None
        boot = _boot_id()
        if self._monotonic is not None and boot is not None and isinstance(record, dict) and record.get("boot") == boot:
            frame = record.get("wall_minus_mono")
            if isinstance(frame, (int, float)) and not isinstance(frame, bool) and math.isfinite(frame):
                self._frame = float(frame)
        self._now()

    def _now(self) -> float:
        """The wall clock, once a step of it since the loaded times were read is taken out of them (`_unstep`).

        A real GPU's energy counter counts the energy used, whatever the wall clock says; the simulated one is
        integrated over wall time from each GPU's checkpoint. After a step back it stood still for as long as the
        step (power read 72 W, the counter frozen for an hour), and a step ahead added the step's energy at once.
        """
        now = self._clock()
        if self._monotonic is not None:
            frame = now - self._monotonic()
            if self._frame is not None and abs(frame - self._frame) > CLOCK_STEP_S:
                self._unstep(round(frame - self._frame))
            self._frame = frame
        return now

    def _unstep(self, step: int) -> None:
        """Move every GPU's checkpoint and cursor by the wall clock's `step` (whole seconds: each keeps its second)."""
        for gpu in self._data.get("gpus", []):
            gpu["checkpoint"]["time"] = float(gpu["checkpoint"]["time"]) + step
        for cursor in self._cursors:
            cursor.time += step
            if cursor.tick_second >= 0:
                cursor.tick_second += step
        self._readings.clear()

    def _reconcile(self, wanted: Dict[str, Any]) -> bool:
        """Make the loaded state match the requested configuration; True when it must be written."""
        self._data, changed = reconcile(self._data, wanted, self.factory, self.node, self._clock)
        return changed

    def _rebuild(self) -> None:
        """(Re)derive the in-memory physics and cursors from the loaded state."""
        data = self._data
        self._extra = (-1, {})
        self._profile = get_profile(data["profile"])
        synthetic = data.get("workload", "synthetic") == "synthetic"
        self._physics = [
            GpuPhysics(self._profile, int(data.get("seed", 0)), self.factory, self.node, i, synthetic)
            for i in range(len(data["gpus"]))
        ]
        self._cursors = [checkpoint_cursor(g["checkpoint"]) for g in data["gpus"]]

    def _refresh(self) -> None:
        """Pick up changes another process wrote since we last looked (one stat call when nothing changed).

        A file that cannot be read or repaired now (its lock cannot be taken: a failing disk) fails this read, as a
        driver call fails, and is tried again at the next one: taken as read, it left the node without GPUs (every
        later read a KeyError) until the process ended.
        """
        identity = stat_identity(self.path)
        if identity is not None and identity != self._identity:
            known = self._data, self._identity
            try:
                self._load()
                if not self._data or self._has_bad_limit():  # unusable or hand-edited: repair it under the lock
                    with FileLock(self.lock_path):
                        repaired = self._load_checked()
                        self._adopt_clock()
                        if self._reconcile(KEEP) or repaired:
                            self._write()
                else:
                    self._adopt_clock()
            except BaseException:
                self._data, self._identity = known
                raise
            self._rebuild()

    def _has_bad_limit(self) -> bool:
        return has_bad_limit(self._data)

    def _commit(self, change: Callable[[Dict[str, Any], float], _T]) -> _T:
        """Apply `change(data, now)` under the file lock, after checkpointing every GPU at `now`."""
        with self._lock, FileLock(self.lock_path):
            self._refresh()
            now = self._now()
            for i in range(len(self._cursors)):
                self._data["gpus"][i]["checkpoint"] = checkpoint_of(self._advance(i, now, settle=True))
            result = change(self._data, now)
            self._data["revision"] = int(self._data.get("revision", 0)) + 1
            self._write()
            self._rebuild()
            self._readings.clear()
            return result

    # -- physics -----------------------------------------------------------------------------------------------

    def _extra_load(self, second: int) -> Dict[int, Tuple[float, float]]:
        """GPU index -> (load, used MiB) of live registered job ranks, re-checked once per second."""
        if self._extra[0] != second:
            alive = rank_registry.live_ranks(self._data, self._ending)
            self._dead_ranks = len(alive) < len(self._data.get("processes", []))
            self._extra = (second, rank_registry.load_per_gpu(alive))
        return self._extra[1]

    def _advance(self, index: int, now: float, settle: bool = False) -> Cursor:
        """Integrate GPU `index` up to the start of the current second (to `now` itself when `settle`)."""
        ambient = self._profile.ambient_c + float(self._data["gpus"][index].get("ambient_offset_c", 0.0))
        extra = self._extra_load(math.floor(now)).get(index, (0.0, 0.0))[0]
        under = Conditions(self.enforced_limit_w(index), ambient, extra)
        return advance(self._cursors[index], self._physics[index], now, under, settle)

    # -- reading -----------------------------------------------------------------------------------------------

    @property
    def profile(self) -> DeviceProfile:
        """The node's device profile."""
        return self._profile

    @property
    def gpu_count(self) -> int:
        """How many GPUs the node has."""
        return len(self._data["gpus"])

    @property
    def unsupported(self) -> Tuple[str, ...]:
        """Fields (or NVML function names) this node's driver answers with NOT_SUPPORTED."""
        return tuple(self._data.get("unsupported") or ())

    @property
    def setters_need_root(self) -> bool:
        """Whether this node's driver refuses setters (a power limit) to a process whose euid is not 0."""
        return bool(self._data.get("setters_need_root", False))

    @property
    def boot_time(self) -> float:
        """When the node last (simulated-)booted, unix seconds."""
        return float(self._data.get("boot_time", 0.0))

    def enforced_limit_w(self, index: int) -> float:
        """The enforced power limit of GPU `index` in watts (the default unless one was set)."""
        limit = self._data["gpus"][index].get("limit_w")
        return float(limit) if limit is not None else self._profile.power_default_w

    def reading(self, index: int) -> GpuReading:
        """GPU `index` now; IndexError when the node has no such GPU.

        A reading stands only if no other process committed a change meanwhile: a writer takes its checkpoint's
        time under the file lock and replaces the file a little later, and a reading computed past that time from
        the old file (say at the old, higher limit) reported energy the new file's history then undercut, so the
        counter went backwards across processes. Until one stands, it is computed again from the file as it is.
        """
        with self._lock:
            while True:
                self._refresh()
                if not 0 <= index < len(self._cursors):
                    raise IndexError(index)
                now = self._now()
                cached = self._readings.get(index)
                if cached is not None and cached[1] == self._identity and 0.0 <= now - cached[0] < READING_TTL_S:
                    return cached[2]
                reading = self._fresh_reading(index, now)
                if unchanged_since(self.path, self.lock_path, self._identity):
                    self._readings[index] = (now, self._identity, reading)
                    return reading

    def _fresh_reading(self, index: int, now: float) -> GpuReading:
        """GPU `index` at `now`, computed from the loaded state (checkpointed first when it is old)."""
        cursor = self._advance(index, now)
        checkpoint = self._data["gpus"][index]["checkpoint"]["time"]
        if cursor.time - checkpoint > CHECKPOINT_EVERY_S or self._dead_ranks:
            # a rank gone without unregistering: what we counted is everyone's
            self._commit(rank_registry.drop_dead_ranks)
            cursor = self._advance(index, now)
        tick = cursor.tick
        assert tick is not None
        inputs = ReadingInputs(
            index=index,
            uuid=gpu_uuid(self.factory, self.node, index),
            stored=self._data["gpus"][index],
            limit_w=self.enforced_limit_w(index),
            tick=tick,
            energy_j=cursor.energy_j + tick.power_w * max(0.0, now - cursor.time),
            temperature_c=cursor.start_temperature_c(),  # as of the second's start, checkpoint or not
            rank_memory_mib=self._extra_load(math.floor(now)).get(index, (0.0, 0.0))[1],
            processes=tuple(p for p in rank_registry.live_ranks(self._data, self._ending) if index in p.gpus),
        )
        return gpu_reading(inputs, self._profile)

    def events_after(self, seq: int) -> List[Dict[str, Any]]:
        """Events (`{"seq", "gpu", "type", "data", "time"}`) with a sequence number above `seq`."""
        with self._lock:
            self._refresh()
            return [dict(e) for e in self._data.get("events", []) if int(e["seq"]) > seq]

    def last_event_seq(self) -> int:
        """The newest event's sequence number (0 when there is none)."""
        with self._lock:
            self._refresh()
            return int(self._data.get("next_seq", 1)) - 1

    # -- changing ----------------------------------------------------------------------------------------------

    def _check_indexes(self, gpus: Optional[Sequence[int]]) -> List[int]:
        count = self.gpu_count
        indexes = list(range(count)) if gpus is None else [int(g) for g in gpus]
        bad = [g for g in indexes if not 0 <= g < count]
        if bad:
            raise ValueError(f"no GPU {bad[0]} on {self.node} (it has GPUs 0-{count - 1})")
        return indexes

    def set_power_limit(self, index: int, watts: Optional[float]) -> float:
        """Set GPU `index`'s limit (None = back to default); ValueError outside min..max. Returns the new limit."""
        self._check_indexes([index])
        p = self._profile
        if watts is not None and not p.power_min_w <= watts <= p.power_max_w:
            raise ValueError(f"{watts:g} W is outside GPU {index}'s range {p.power_min_w:g}-{p.power_max_w:g} W")

        def change(data: Dict[str, Any], now: float) -> float:
            data["gpus"][index]["limit_w"] = None if watts is None or watts == p.power_default_w else float(watts)
            return float(watts) if watts is not None else p.power_default_w

        result: float = self._commit(change)
        return result

    def inject(self, fault: str, gpus: Optional[Sequence[int]] = None, xid: Optional[int] = None) -> Dict[str, Any]:
        """Inject `fault` (one of FAULTS) on `gpus` (None = all); returns what was done, JSON-ready."""
        check_fault(fault, xid)
        check_reportable(fault, self.unsupported)
        indexes = self._check_indexes(gpus)
        cold = new_gpu(0.0, self._profile)["checkpoint"]["temperature_c"]
        result: Dict[str, Any] = self._commit(lambda data, now: apply_fault(data, fault, indexes, xid, now, cold))
        return result

    def register_process(
        self, pid: int, gpus: Sequence[int], load: float = 1.0, used_memory_mib: float = 0.0, name: Optional[str] = None
    ) -> Optional[threading.Thread]:
        """Put a job rank's load on `gpus` for as long as process `pid` lives.

        Another process's pid is watched by a thread, returned (None for this process's own): it banks the rank's
        energy once the pid is gone, so a launcher joins it before it exits (factoryctl.agent.rank_run).
        """
        indexes = self._check_indexes(gpus)
        self._commit(lambda data, now: rank_registry.register(data, now, pid, indexes, load, used_memory_mib, name))
        self._extra = (-1, {})
        if pid == os.getpid():
            return None
        watcher = threading.Thread(target=self._watch, args=(pid,), name=f"sim-watch-{pid}", daemon=True)
        watcher.start()
        return watcher

    def _watch(self, pid: int) -> None:
        """Bank another process's energy when it ends: this (registering) process waits for it, as a launcher would.

        Its load counts while its pid lives, so a process that ends between two reads would take the time since the
        last checkpoint with it; this writes that checkpoint, counting it alive to the end (within
        `rank_registry.WATCH_S`).
        """
        rank_registry.wait_for_exit(pid)
        with self._lock:
            self._ending.add(pid)
            self._extra = (-1, {})
            try:
                self._commit(rank_registry.drop_dead_ranks)
            except OSError:  # the state dir is gone: nothing left to bank
                pass
            finally:
                self._ending.discard(pid)

    def heartbeat(self, pid: int) -> None:
        """Bank a running rank's energy so far (a checkpoint) and note when it was `seen`.

        A rank's load is applied to the time since the last checkpoint only while its pid lives, so a rank killed
        before it can unregister (SIGKILL) would take that time's load with it; `sim.rank` beats every few seconds.
        """
        self._commit(lambda data, now: rank_registry.beat(data, now, pid))

    def unregister_process(self, pid: int) -> None:
        """Remove a job rank's load (also happens by itself once its pid is gone)."""
        self._commit(lambda data, now: rank_registry.unregister(data, pid))
        self._extra = (-1, {})


@functools.lru_cache(maxsize=1)
def _boot_id() -> Optional[str]:
    """This machine's boot (Linux), or None: a monotonic time is comparable only with one of the same boot."""
    try:
        with open(_BOOT_ID, encoding="ascii") as found:
            return found.read().strip() or None
    except (OSError, ValueError):
        return None
