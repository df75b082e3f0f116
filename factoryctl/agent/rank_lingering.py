"""Ranks whose command ended while a process of theirs lives on, found from /proc instead of from every record.

A stray launch (one no job holds) is swept by asking its node for its live ranks (`ranks` with `running`). A rank
whose command ended can still hold its GPUs: a worker that left the group (`setsid`) and carries the rank's mark
(factoryctl.agent.rank_procs) lives on. A node keeps two weeks of ended ranks, thousands on a busy one, and every
pass sweeps every node it works on: reading each ended rank's record to match its mark would cost each sweep that
much. So a rank's mark names its directory (`<job>/rank-<r>/<random>`): one pass over this user's processes finds
the marks still carried, and only those ranks' records are read, each taken only when its record holds that very
mark (a process cannot name another rank). A mark naming no directory (a rank launched by an agent from before
this) makes every ended rank a candidate again, as before. Python 3.9 and the standard library.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, NamedTuple, Optional, Set

from factoryctl.agent.rank_fields import JOB_ID
from factoryctl.agent.rank_procs import (
    MARK_VARIABLE,
    RankKey,
    environ_entries,
    new_mark,
    owner,
    pids,
    proc_readable,
    process_status,
)

#: A mark that names its rank: `<job>/rank-<rank>/<32 hex digits>`, the job as a request's (`rank_fields.JOB_ID`).
_LOCATED = re.compile(f"({JOB_ID.pattern})/rank-([0-9]{{1,5}})/[0-9a-f]{{32}}".encode())


def located_mark(job: str, rank: int) -> str:
    """A fresh mark for rank `rank` of `job` that names its directory, so a process carrying it leads to its record."""
    return f"{job}/rank-{rank}/{new_mark()}"


class CarriedMarks(NamedTuple):
    """The marks this user's live processes carry: by the rank each names, and whether one names none."""

    located: Dict[RankKey, Set[str]]
    unlocated: bool

    def may_linger(self, key: RankKey, record: Optional[Dict[str, Any]] = None) -> bool:
        """Whether an ended rank may have a process left: its mark is carried (and is `record`'s, when given)."""
        if self.unlocated:
            return True
        marks = self.located.get(key, set())
        return bool(marks) and (record is None or record.get("mark") in marks)


def carried_marks() -> CarriedMarks:
    """The rank marks in the environments of this user's live processes, in one pass over /proc.

    Without /proc no mark is found and none is unlocated: only the ranks still running are then told of.
    """
    located: Dict[RankKey, Set[str]] = {}
    unlocated = False
    if not proc_readable():
        return CarriedMarks(located, unlocated)
    prefix = f"{MARK_VARIABLE}=".encode()
    uid = os.getuid()
    for pid in pids():
        if owner(pid) != uid or process_status(pid) is None:  # another user's (no rank of ours), gone, or a zombie
            continue
        for entry in environ_entries(pid):
            if entry.startswith(prefix):
                mark = entry[len(prefix) :]
                named = _LOCATED.fullmatch(mark)
                if named is None:
                    unlocated = True
                else:
                    located.setdefault((named.group(1).decode(), int(named.group(2))), set()).add(mark.decode())
                break
    return CarriedMarks(located, unlocated)
