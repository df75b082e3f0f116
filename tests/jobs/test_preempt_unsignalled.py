"""A preempted gang's node that does not take the SIGTERM is said, not passed over in silence.

The review's case: the victim's record said "SIGTERM sent" while the node had refused the connection; nothing was
logged, and the job had no chance to checkpoint before its SIGKILL at the grace's end. The pass now notes the node
(`TickReport.unsignalled`: `sched tick`'s summary and the controller's log say it) and holds it out as silent.
"""

from __future__ import annotations

import time
from pathlib import Path

from sshd_fixture import free_port

from factoryctl.config import load_config
from factoryctl.jobs.leftovers import PassNotes
from factoryctl.jobs.preempting import begin_stops
from factoryctl.jobs.rank_env import launch_id
from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, Rank
from factoryctl.scheduler.decide import PreemptDecision
from factoryctl.store.sqlite import Store


def test_a_node_refusing_the_sigterm_is_noted_and_held_out(tmp_path: Path) -> None:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: pu\nstate_dir: {tmp_path / 'state'}\nssh: {{connect_timeout_s: 5}}\n"
        f"nodes:\n  b1: {{host: 127.0.0.1, port: {free_port()}}}\n"  # nothing listens there: refused at once
    )
    config = load_config(path)
    store = Store(config.store_path)
    now = time.time()
    spec = JobSpec(2, name="lo", user="ana", command=("sleep", "60"))
    victim = Job(
        "lo", spec, now - 60, JobState.RUNNING, "running on b1", now - 50,
        allocation=(GpuAllocation("b1", 2),), ranks=(Rank(0, "b1", gpus=(0, 1)),),
    )  # fmt: skip
    store.add_job(victim)
    notes = PassNotes()
    [stopped] = begin_stops(config, store, [victim], [PreemptDecision("lo", "hi", 30.0, "for hi")], now, notes)
    store.close()
    assert stopped.after.stopping is not None  # recorded all the same: its SIGKILL comes at the grace's end
    assert notes.unsignalled == [("b1", launch_id(stopped.after))]
    assert notes.silent == {"b1"}
