"""`run_tick` on a simulated fleet: gangs launched on every node at once, watched, requeued, failed, cancelled.

Real agents on the simulated driver over the local transport, a real SQLite store, and ranks that are real
processes (this Python, told what to do by its environment). Each test waits on the job's state, never on time.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

from factoryctl.config import load_config
from factoryctl.jobs.cancel import cancel_jobs
from factoryctl.jobs.logs import cursors_for, labelled, read_more
from factoryctl.jobs.tick import run_tick
from factoryctl.model.jobs import Job, JobSpec, JobState
from factoryctl.sim.rank_registry import pid_alive
from factoryctl.store.sqlite import Store

PY = sys.executable
#: A rank that says who it is, then exits with the code its environment asks of its rank (`EXIT_<RANK>`).
SAYS = (
    "import os, sys; e = os.environ; print('rank', e['RANK'], 'of', e['WORLD_SIZE'], 'gpus', e['CUDA_VISIBLE_DEVICES'],"
    " 'master', e['MASTER_ADDR']); sys.exit(int(e.get('EXIT_' + e['RANK'], '0')))"
)


@pytest.fixture
def fleet(tmp_path: Path, cli: Any) -> Iterator[tuple[Any, Store]]:
    """Two simulated nodes of two GPUs each, seen once by a telemetry sweep so the scheduler knows them."""
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: jt\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  a[1-2]: {transport: local, sim: {profile: h100-sxm, gpus: 2}}\n"
    )
    swept = cli("--config", str(path), "telemetry", "collect", "--once")
    assert swept.exit_code == 0, swept.stderr
    config = load_config(path)
    store = Store(config.store_path)
    yield config, store
    store.close()


def _submit(store: Store, job_id: str, gpus: int, code: str = SAYS, **spec: Any) -> Job:
    job = Job(job_id, JobSpec(gpus, name=job_id, user="ana", command=(PY, "-c", code), **spec), time.time())
    store.add_job(job)
    return job


def _tick_until(config: Any, store: Store, job_id: str, *states: JobState) -> Job:
    def reached() -> bool:
        run_tick(config, store)
        return store.job(job_id).state in states  # type: ignore[union-attr]

    wait_for(reached, what=f"job {job_id} in {states}", poll_s=0.2)
    job = store.job(job_id)
    assert job is not None
    return job


def test_a_two_node_gang_runs_on_both_nodes_and_succeeds(fleet: tuple[Any, Store]) -> None:
    config, store = fleet
    _submit(store, "g1", 4)
    report = run_tick(config, store)
    [started] = report.changes
    assert started.before.state is JobState.PENDING
    assert started.after.state is JobState.RUNNING
    assert started.after.placement.render() == "a1:2 a2:2"
    assert all(r.pid for r in started.after.ranks)
    done = _tick_until(config, store, "g1", JobState.SUCCEEDED)
    assert [r.exit_code for r in done.ranks] == [0, 0]
    assert done.reason == "every rank exited 0"
    cursors = cursors_for(done)
    assert read_more(config, done, cursors) == []
    master = "127.0.0.1"  # local nodes: this machine, whose inventory names need not resolve
    assert list(labelled(cursors)) == [
        f"0: rank 0 of 2 gpus 0,1 master {master}",
        f"1: rank 1 of 2 gpus 0,1 master {master}",
    ]
    kinds = [e.kind for e in store.events(0.0) if e.kind.startswith("job_")]
    assert "job_running" in kinds
    assert "job_succeeded" in kinds


def test_a_failed_rank_requeues_the_gang_then_fails_it(fleet: tuple[Any, Store]) -> None:
    config, store = fleet
    _submit(store, "g2", 4, env=(("EXIT_1", "3"),))
    seen: list[Job] = []

    def failed() -> bool:
        seen.extend(c.after for c in run_tick(config, store, max_restarts=1).changes if c.state_changed)
        return store.job("g2").state is JobState.FAILED  # type: ignore[union-attr]

    wait_for(failed, what="g2 failed", poll_s=0.2)
    assert [(j.state, j.restarts) for j in seen] == [
        (JobState.RUNNING, 0),
        (JobState.PENDING, 1),  # requeued, then placed again in the same pass
        (JobState.RUNNING, 1),
        (JobState.FAILED, 1),
    ]
    assert seen[1].reason == "rank 1 on a2 exited 3; requeued (restart 1 of 1)"
    assert seen[-1].reason == "rank 1 on a2 exited 3; failed after 1 restart"


def test_gangs_share_no_gpu_and_the_rest_waits(fleet: tuple[Any, Store]) -> None:
    config, store = fleet
    sleeper = "import time; time.sleep(60)"
    _submit(store, "s1", 1, sleeper)
    _submit(store, "s2", 1, sleeper)
    _submit(store, "big", 4, sleeper)
    run_tick(config, store)
    jobs = {j.id: j for j in store.jobs()}
    held = [(r.node, g) for j in jobs.values() if j.state.active for r in j.ranks for g in r.gpus]
    assert len(held) == len(set(held)) == 2
    assert jobs["big"].state is JobState.PENDING
    assert jobs["big"].reason
    report = cancel_jobs(config, store, [jobs["s1"], jobs["s2"], jobs["big"]], "ana", grace_s=5)
    assert {j.id for j in report.cancelled} == {"s1", "s2", "big"}
    pids = [r.pid for j in (jobs["s1"], jobs["s2"]) for r in j.ranks]
    wait_for(lambda: not any(_alive(p) for p in pids), what="cancelled ranks gone")


def test_a_gang_past_its_walltime_is_killed_and_failed(fleet: tuple[Any, Store]) -> None:
    config, store = fleet
    _submit(store, "w1", 2, "import time; time.sleep(60)", walltime_s=1.0)
    run_tick(config, store)
    pids = [r.pid for r in store.job("w1").ranks]  # type: ignore[union-attr]
    failed = _tick_until(config, store, "w1", JobState.FAILED)
    assert failed.reason == "reached its walltime of 1s"
    wait_for(lambda: not any(_alive(p) for p in pids), what="the walltime's ranks gone")


def test_a_command_its_node_cannot_start_fails_the_job(fleet: tuple[Any, Store]) -> None:
    config, store = fleet
    job = Job("bad", JobSpec(1, user="ana", command=("/no/such/program",)), time.time())
    store.add_job(job)
    run_tick(config, store)
    failed = store.job("bad")
    assert failed is not None
    assert failed.state is JobState.FAILED
    assert failed.reason.startswith("rank 0 could not start on a1: ")


def _alive(pid: int | None) -> bool:
    return pid is not None and pid_alive(pid)


#: A rank that fails until it finds its own checkpoint, as a training job resumes: first run writes it and exits 3.
RESUMES = (
    "import os, sys; d = os.environ['FACTORY_CHECKPOINT_DIR']; p = os.path.join(d, 'step');"
    " print('restart', os.environ['FACTORY_RESTART_COUNT'], 'found', os.path.exists(p));"
    " sys.exit(0) if os.path.exists(p) else (open(p, 'w').write('1'), sys.exit(3))"
)


def test_a_requeued_gang_resumes_from_its_checkpoint(fleet: tuple[Any, Store]) -> None:
    config, store = fleet
    _submit(store, "ck", 1, RESUMES)
    done = _tick_until(config, store, "ck", JobState.SUCCEEDED, JobState.FAILED)
    assert done.state is JobState.SUCCEEDED
    assert done.restarts == 1
    cursors = cursors_for(done)
    read_more(config, done, cursors)
    assert list(labelled(cursors)) == ["0: restart 1 found True"]  # this launch's own log


def test_a_kill_owed_to_a_node_is_made_once_it_is_up(fleet: tuple[Any, Store]) -> None:
    from factoryctl.jobs.leftovers import owe_kills, owed_kills, settle_kills
    from factoryctl.jobs.rank_env import launch_id

    config, store = fleet
    _submit(store, "o1", 1, "import time; time.sleep(60)")
    run_tick(config, store)
    job = store.job("o1")
    assert job is not None
    pid = job.ranks[0].pid
    owe_kills(store, [(job.ranks[0].node, launch_id(job)), ("gone", "x.1")])
    assert settle_kills(config, store, up=()) == [("gone", "x.1")]  # a node not in factory.yaml: forgotten
    assert _alive(pid)
    assert settle_kills(config, store, up={job.ranks[0].node}) == [(job.ranks[0].node, launch_id(job))]
    assert owed_kills(store) == []
    wait_for(lambda: not _alive(pid), what="the owed rank killed")


def test_a_gang_on_a_node_gone_from_factory_yaml_is_requeued_and_its_other_rank_killed(
    fleet: tuple[Any, Store], tmp_path: Path
) -> None:
    from factoryctl.jobs.leftovers import owed_kills

    config, store = fleet
    _submit(store, "r1", 4, "import time; time.sleep(60)", env=(("X", "1"),))
    run_tick(config, store)
    first = store.job("r1")
    assert first is not None
    assert first.state is JobState.RUNNING
    path = tmp_path / "factory.yaml"
    path.write_text(path.read_text().replace("a[1-2]", "a1"))
    smaller = load_config(path)
    report = run_tick(smaller, store)
    requeued = next(c.after for c in report.changes if c.after.state is JobState.PENDING)
    assert requeued.reason == "rank 1 on a2 is lost (its node is no longer in factory.yaml); requeued (restart 1 of 3)"
    wait_for(lambda: not _alive(first.ranks[0].pid), what="rank 0 on a1 killed")
    assert [node for node, _ in owed_kills(store)] == ["a2"]  # a2 could not be told: owed
    run_tick(smaller, store)
    assert owed_kills(store) == []  # owed to a node gone from factory.yaml: forgotten by the next pass


def test_a_stray_rank_is_killed_before_a_gang_starts_beside_it(fleet: tuple[Any, Store]) -> None:
    """A rank no job holds (a launch answered too late, a store created again) never shares a GPU with a new gang."""
    from factoryctl.telemetry.poll import agent_session

    config, store = fleet
    with agent_session(config.nodes["a1"], config, 15.0) as session:
        stray = session.launch_rank("zz.1", 0, [PY, "-c", "import time; time.sleep(60)"], {}, [0, 1], None)
    _submit(store, "n1", 2, "import time; time.sleep(60)", nodes=("a1",))
    report = run_tick(config, store)
    assert report.strays == (("a1", "zz.1"),)
    assert store.job("n1").state is JobState.RUNNING  # type: ignore[union-attr]
    wait_for(lambda: not _alive(stray["pid"]), what="the stray rank killed")
    again = run_tick(config, store)  # the gang's own ranks are no strays
    assert again.strays == ()
    assert all(_alive(r.pid) for r in store.job("n1").ranks)  # type: ignore[union-attr]


def test_a_waiting_job_is_cancelled_while_a_pass_holds_the_lock(fleet: tuple[Any, Store]) -> None:
    from factoryctl.jobs.pass_lock import scheduling_pass

    config, store = fleet
    job = _submit(store, "w2", 64)  # larger than the fleet: it waits
    with scheduling_pass(config.state_dir):
        report = cancel_jobs(config, store, [job], "ana")
    assert [j.state for j in report.cancelled] == [JobState.CANCELLED]


#: A rank that ignores SIGTERM, so a cancel of it waits out its grace whole.
IGNORES_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, lambda *a: None); print('up', flush=True); time.sleep(60)"
)


def _cancel_in_grace(config: Any, store: Store, job_id: str) -> tuple[Any, Job]:
    """Run a gang that ignores SIGTERM, and cancel it on a thread (3 s grace); the thread, once the job is CANCELLED."""
    import threading

    _submit(store, job_id, 2, IGNORES_TERM)
    run_tick(config, store)
    job = store.job(job_id)
    assert job is not None
    wait_for(lambda: _said(config, job) == ["0: up"], what="the rank up")
    stop = {"grace_s": 3.0}  # the rank ignores SIGTERM: its grace is waited out whole
    canceller = threading.Thread(target=cancel_jobs, args=(config, Store(config.store_path), [job], "ana"), kwargs=stop)
    canceller.start()
    wait_for(lambda: store.job(job_id).state is JobState.CANCELLED, what="CANCELLED")  # type: ignore[union-attr]
    return canceller, job


def test_a_cancelled_gang_is_recorded_cancelled_before_it_is_stopped(fleet: tuple[Any, Store]) -> None:
    """A cancel cut short (Ctrl-C in its grace period) must not leave a RUNNING gang whose TERM exit reads as a failure."""
    config, store = fleet
    canceller, job = _cancel_in_grace(config, store, "t1")
    assert canceller.is_alive()  # still in its grace period: the rank ignores SIGTERM
    assert _alive(job.ranks[0].pid)
    canceller.join(30)
    wait_for(lambda: not _alive(job.ranks[0].pid), what="the rank killed after its grace")


def test_follow_goes_on_across_a_restart(fleet: tuple[Any, Store]) -> None:
    from factoryctl.jobs.logs import follow

    config, store = fleet
    _submit(store, "f1", 1, RESUMES)
    run_tick(config, store)
    said: list[str] = []
    restarts: list[int] = []

    def one_pass(seconds: float) -> bool:
        run_tick(config, store)
        return False

    cursors = cursors_for(store.job("f1"))  # type: ignore[arg-type]
    follow(config, lambda: store.job("f1"), cursors, said.append, one_pass, lambda j: restarts.append(j.restarts))  # type: ignore[arg-type, return-value]
    assert said == ["0: restart 0 found False", "0: restart 1 found True"]
    assert restarts == [1]


def _said(config: Any, job: Job) -> list[str]:
    cursors = cursors_for(job)
    read_more(config, job, cursors)
    return list(labelled(cursors, final=True))


#: Rank 0 checkpoints on SIGTERM (says so, then exits 143); rank 1 fails at once.
TERM_THEN_FAIL = (
    "import os, signal, sys, time\n"
    "def stop(*_):\n    print('rank', os.environ['RANK'], 'checkpointing on TERM', flush=True); sys.exit(143)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "print('rank', os.environ['RANK'], 'up', flush=True)\n"
    "sys.exit(3) if os.environ['RANK'] == '1' else time.sleep(60)"
)


def test_the_other_ranks_of_a_failed_gang_get_sigterm_first(fleet: tuple[Any, Store]) -> None:
    config, store = fleet
    _submit(store, "tf", 4, TERM_THEN_FAIL)
    done = None

    def failed() -> bool:
        nonlocal done
        done = next(
            (c.before for c in run_tick(config, store, max_restarts=0).changes if c.after.state is JobState.FAILED),
            None,
        )
        return done is not None

    wait_for(failed, what="tf failed", poll_s=0.2)
    assert done is not None
    assert _said(config, done) == ["0: rank 0 up", "0: rank 0 checkpointing on TERM", "1: rank 1 up"]


def test_a_node_forgets_launches_that_ended_two_weeks_ago(fleet: tuple[Any, Store]) -> None:
    from factoryctl.telemetry.poll import agent_session

    config, _ = fleet
    quick = [PY, "-c", "print('done')"]
    with agent_session(config.nodes["a1"], config, 15.0) as session:
        session.launch_rank("old.1", 0, quick, {}, [0], None)
        session.launch_rank("new.1", 0, quick, {}, [0], None)
        wait_for(lambda: [r["running"] for r in session.ranks(["old.1", "new.1"])] == [False, False], what="both ended")
        old_exit = next(config.state_dir.rglob("old.1/rank-0/exit"))
        two_weeks = time.time() - 15 * 86400
        os.utime(old_exit, (two_weeks, two_weeks))
        session.launch_rank("next.1", 0, quick, {}, [1], None)  # a launch prunes what ended over 14 days ago
        assert [r["job"] for r in session.ranks(None)] == ["new.1", "next.1"]


def test_two_gangs_whose_rank_0_share_a_node_get_different_rendezvous_ports(fleet: tuple[Any, Store]) -> None:
    from factoryctl.jobs.rank_env import master_port

    config, store = fleet
    seen: dict[int, str] = {}
    first = second = ""
    for i in range(5000):  # two ids whose own ports are the same (the birthday bound: a few dozen tries)
        port = master_port(f"p{i}")
        if port in seen:
            first, second = seen[port], f"p{i}"
            break
        seen[port] = f"p{i}"
    says = "import os; print(os.environ['MASTER_PORT'])"
    _submit(store, first, 1, says, nodes=("a1",))
    _submit(store, second, 1, says, nodes=("a1",))
    run_tick(config, store)
    jobs = [store.job(first), store.job(second)]
    ports = [j.master_port for j in jobs if j is not None]
    assert len(set(ports)) == 2
    assert ports[0] == master_port(first)  # the first keeps its own; the second takes the next free one
    done = [_tick_until(config, store, j, JobState.SUCCEEDED) for j in (first, second)]
    assert [_said(config, j) for j in done] == [[f"0: {ports[0]}"], [f"0: {ports[1]}"]]


def test_a_cancel_waiting_for_a_pass_says_so_once(fleet: tuple[Any, Store]) -> None:
    import threading

    from factoryctl.jobs.pass_lock import scheduling_pass

    config, store = fleet
    _submit(store, "cw", 1, "import time; time.sleep(60)")
    run_tick(config, store)
    job = store.job("cw")
    assert job is not None
    held, release = threading.Event(), threading.Event()

    def a_pass() -> None:
        with scheduling_pass(config.state_dir):
            held.set()
            release.wait(10)

    other = threading.Thread(target=a_pass)
    other.start()
    held.wait(10)
    said: list[str] = []
    threading.Timer(1.0, release.set).start()
    report = cancel_jobs(config, store, [job], "ana", waiting=said.append)
    other.join(10)
    assert said == [str(os.getpid())]
    assert [j.state for j in report.cancelled] == [JobState.CANCELLED]


def test_follow_says_a_node_it_cannot_read_at_once(fleet: tuple[Any, Store], tmp_path: Path) -> None:
    from factoryctl.jobs.logs import follow

    config, store = fleet
    _submit(store, "fs", 4)
    done = _tick_until(config, store, "fs", JobState.SUCCEEDED)
    path = tmp_path / "factory.yaml"
    path.write_text(path.read_text().replace("a[1-2]", "a1"))
    said: list[str] = []
    told: list[list[str]] = []
    cursors = cursors_for(done)
    follow(
        load_config(path),
        lambda: done,
        cursors,
        said.append,
        lambda s: False,
        None,
        lambda e: told.append([x.node for x in e]),
    )
    assert told == [["a2"]]
    assert said == ["0: rank 0 of 2 gpus 0,1 master 127.0.0.1"]


def test_a_simulated_reboot_ends_the_nodes_ranks_and_the_gang_is_requeued(fleet: tuple[Any, Store], cli: Any) -> None:
    config, store = fleet
    _submit(store, "rb", 4, "import time; time.sleep(60)")
    run_tick(config, store)
    before = store.job("rb")
    assert before is not None
    assert before.state is JobState.RUNNING
    rebooted = cli("--config", str(config.path), "sim", "inject", "a2", "--reboot")
    assert rebooted.exit_code == 0, rebooted.stderr
    wait_for(lambda: not _alive(before.ranks[1].pid), what="a2's rank ended by the reboot")
    report = run_tick(config, store)
    requeued = next(c.after for c in report.changes if c.before.state is JobState.RUNNING)
    assert requeued.reason == "rank 1 on a2 ended without an exit status; requeued (restart 1 of 3)"


def test_a_node_says_how_long_a_rank_has_run_on_its_boot_clock(fleet: tuple[Any, Store]) -> None:
    from factoryctl.telemetry.poll import agent_session

    config, _ = fleet
    with agent_session(config.nodes["a1"], config, 15.0) as session:
        started = session.launch_rank("bc.1", 0, [PY, "-c", "import time; time.sleep(60)"], {}, [0], None)
        wait_for(lambda: (session.ranks(["bc.1"])[0].get("running_s") or 0) > 0.2, what="a running time")
        [report] = session.ranks(["bc.1"])
        assert 0.2 < report["running_s"] < 60
        session.kill_ranks("bc.1", "KILL")
        wait_for(lambda: not session.ranks(["bc.1"])[0]["running"], what="the rank ended")
        assert session.ranks(["bc.1"])[0]["running_s"] is None
    assert not _alive(started["pid"])


#: Rank 0 starts a worker that ignores SIGTERM (a checkpointing child) and says its pid; rank 1 fails at once.
CHILD_OUTLIVES = (
    "import os, subprocess, sys\n"
    "code = 'import signal, time; signal.signal(signal.SIGTERM, lambda *a: None); time.sleep(60)'\n"
    "child = subprocess.Popen([sys.executable, '-c', code])\n"
    "print(child.pid, flush=True)\n"
    "sys.exit(3) if os.environ['RANK'] == '1' else child.wait()"
)


def test_a_stopped_gangs_children_do_not_outlive_it(fleet: tuple[Any, Store]) -> None:
    config, store = fleet
    _submit(store, "co", 4, CHILD_OUTLIVES)
    seen: list[Job] = []

    def failed() -> bool:
        seen.extend(c.before for c in run_tick(config, store, max_restarts=0).changes if c.after.state.terminal)
        return bool(seen)

    wait_for(failed, what="co failed", poll_s=0.2)
    children = [int(line.split(": ")[1]) for line in _said(config, seen[0])]
    assert len(children) == 2
    wait_for(lambda: not any(_alive(pid) for pid in children), what="the ranks' children killed with their gang")


def test_a_cancel_owes_its_kills_until_its_gang_took_them(fleet: tuple[Any, Store]) -> None:
    """A cancel cut short (Ctrl-C) leaves its kills owed, for the next pass; one that finished owes nothing."""
    from factoryctl.jobs.leftovers import owed_kills

    config, store = fleet
    canceller, _ = _cancel_in_grace(config, store, "ow")
    assert [node for node, _ in owed_kills(store)] == ["a1"]  # owed while the stop is under way
    canceller.join(30)
    assert owed_kills(store) == []  # the KILL was made: forgiven


def test_the_controllers_loop_makes_a_pass_for_a_kill_owed_with_an_empty_queue(fleet: tuple[Any, Store]) -> None:
    from factoryctl.jobs.leftovers import owe_kills, owed_kills
    from factoryctl.jobs.loop import JobsLoop

    config, store = fleet
    loop = JobsLoop(config, 60.0)
    loop._one_pass(store)
    assert loop.passes == 0  # nothing queued, running or owed: no pass
    owe_kills(store, [("a1", "gone.1")])
    loop._one_pass(store)
    assert loop.passes == 1
    assert owed_kills(store) == []  # settled: a1 is up


def test_follow_from_a_launch_already_restarted_prints_both(fleet: tuple[Any, Store]) -> None:
    """`jobs logs --follow` read the first launch, then the gang restarted before following began: nothing is lost."""
    from factoryctl.jobs.logs import follow

    config, store = fleet
    _submit(store, "fr", 1, RESUMES)
    first = next(c.after for c in run_tick(config, store).changes if c.after.state is JobState.RUNNING)
    cursors = cursors_for(first)
    done = _tick_until(config, store, "fr", JobState.SUCCEEDED)  # restarted and done before following starts
    said: list[str] = []
    restarts: list[int] = []
    follow(
        config,
        lambda: done,
        cursors,
        said.append,
        lambda s: False,
        lambda j: restarts.append(j.restarts),
        None,
        first,
    )
    assert said == ["0: restart 0 found False", "0: restart 1 found True"]
    assert restarts == [1]


def test_a_node_that_failed_a_launch_itself_is_held_out_not_one_that_refused_a_command() -> None:
    from factoryctl.errors import NodeError, UsageError
    from factoryctl.jobs.launch import _failed_node

    assert _failed_node(NodeError("n1", "timeout", "timed out"))
    assert _failed_node([{"pid": 1}, NodeError("n1", "agent", "the session closed")])
    assert not _failed_node([{"pid": 1}, UsageError("n1: no program x was found")])
