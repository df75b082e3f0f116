"""Starting gangs: every rank of a gang launched on its node in the same pass, or none left running.

Each node is reached once for all the ranks starting there. A gang whose every rank started is RUNNING. When any
rank could not start, the ranks that did are killed: a node that failed (unreachable, timed out) puts the gang back
in the queue for the next pass, while a command its node refused (no such program, no such directory) fails the
job: it would fail the same way on every retry.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from factoryctl.config import FactoryConfig
from factoryctl.errors import FactoryError, NodeError, UsageError
from factoryctl.jobs.leftovers import PassNotes, kill_launches, launches_of, sweep_strays
from factoryctl.jobs.node_calls import on_nodes
from factoryctl.jobs.rank_calls import owed_by
from factoryctl.jobs.rank_env import launch_id, rank_environment
from factoryctl.jobs.records import Change, running_reason
from factoryctl.model.jobs import GpuAllocation, Job, JobState, Rank
from factoryctl.transport.session import AgentSession

#: How long a node has to answer a launch: longer than its agent waits for the rank's wrapper (30 s, a slow file
#: system's chdir), so a launch is not taken as failed while the node may still start it.
LAUNCH_ANSWER_S = 40.0


@dataclass(frozen=True)
class RankLaunch:
    """One rank to start: its job (STARTING, with its allocation and ranks), and what its node is asked."""

    job: Job
    rank: Rank
    env: dict[str, str]


def starting(
    job: Job,
    allocation: Sequence[GpuAllocation],
    gpus: Sequence[tuple[int, ...]],
    now: float,
    why: str,
    port: int,
) -> Job:
    """The job's STARTING record: its allocation, a rank per node with the GPU indexes chosen, its rendezvous port."""
    ranks = tuple(Rank(rank=i, node=a.node, gpus=g) for i, (a, g) in enumerate(zip(allocation, gpus, strict=True)))
    return job.evolve(
        state=JobState.STARTING, allocation=tuple(allocation), ranks=ranks, started_at=now, reason=why,
        master_port=port,
    )  # fmt: skip


def master_address(config: FactoryConfig, job: Job) -> str:
    """MASTER_ADDR: rank 0's node as the other ranks reach it.

    An SSH node's address as its connection resolves it (`ssh_config.reached_at`): factory.yaml's `host`, else the
    `HostName` that ~/.ssh/config gives that host, else the host itself. An inventory name (`gpu01` in ~/.ssh/config
    only) need not resolve on the other nodes; the address factoryctl connects to usually does, through a ProxyJump
    too (the jump host reaches the nodes on the network they share). A `transport: local` node is this machine, whose
    inventory name need not resolve (a `demo` node, a workstation `ws`): 127.0.0.1 when every rank is local too, else
    this machine's host name.
    """
    first = config.nodes.get(job.ranks[0].node)
    if first is None:
        return job.ranks[0].node
    if first.transport != "local":
        from factoryctl.transport.ssh_config import reached_at

        return reached_at(first)[0]
    if all(config.nodes.get(r.node) is not None and config.nodes[r.node].transport == "local" for r in job.ranks):
        return "127.0.0.1"
    return socket.gethostname()


def rank_launches(config: FactoryConfig, job: Job) -> list[RankLaunch]:
    """What each node of a STARTING job is asked to start."""
    master = master_address(config, job)
    return [RankLaunch(job, r, rank_environment(job, job.allocation, r.rank, r.gpus, master)) for r in job.ranks]


def launch_gangs(config: FactoryConfig, jobs: Sequence[Job], now: float, notes: PassNotes) -> list[Change]:
    """Launch every rank of these STARTING jobs; each job's change (RUNNING, requeued or FAILED).

    Each node is swept of strays first (`leftovers.sweep_strays`: a launch no active job holds), so a gang never
    starts beside a rank the store lost track of; kills owed and silent nodes go to `notes`.
    """
    by_node: dict[str, list[RankLaunch]] = {}
    for job in jobs:
        for launch in rank_launches(config, job):
            by_node.setdefault(launch.rank.node, []).append(launch)

    def start_all(session: AgentSession, node: str) -> list[Mapping[str, Any] | FactoryError]:
        sweep_strays(session, node, notes)
        return [_start(session, launch) for launch in by_node[node]]

    answers = on_nodes(config, list(by_node), start_all, held=False)
    notes.silent.update(n for n, a in answers.items() if _failed_node(a))
    changes = [_outcome(job, answers, by_node, now) for job in jobs]
    failed = [c.before for c in changes if c.after.state is not JobState.RUNNING]
    if failed:  # ranks that started have run nothing worth a grace: killed at once
        notes.owed.extend(owed_by(failed, kill_launches(config, launches_of(failed), "KILL")))
    return changes


def _failed_node(answer: list[Mapping[str, Any] | FactoryError] | NodeError) -> bool:
    """Whether the node itself failed its launches (unreachable, timed out), not only refused a command."""
    if isinstance(answer, NodeError):
        return True
    return any(isinstance(result, NodeError) for result in answer)


def _start(session: AgentSession, launch: RankLaunch) -> Mapping[str, Any] | FactoryError:
    spec = launch.job.spec
    try:
        return session.launch_rank(
            launch_id(launch.job),
            launch.rank.rank,
            list(spec.command),
            launch.env,
            list(launch.rank.gpus),
            spec.cwd or None,
            timeout=LAUNCH_ANSWER_S,
        )
    except FactoryError as exc:  # this rank's refusal or its node's failure; the node's other launches go on
        return exc


def _outcome(
    job: Job,
    answers: Mapping[str, list[Mapping[str, Any] | FactoryError] | NodeError],
    by_node: Mapping[str, list[RankLaunch]],
    now: float,
) -> Change:
    ranks: list[Rank] = []
    for r in job.ranks:
        answer = answers[r.node]
        result = answer if isinstance(answer, NodeError) else _own(answer, by_node[r.node], job.id, r.rank)
        if isinstance(result, UsageError):
            reason = f"rank {r.rank} could not start on {r.node}: {_said(result, r.node)}"
            return Change(job, job.evolve(state=JobState.FAILED, reason=reason, ended_at=now))
        if isinstance(result, FactoryError):
            why = f"rank {r.rank} could not start on {r.node}: {_said(result, r.node)}; requeued"
            return Change(job, job.requeued(why, restarts=job.restarts))
        ranks.append(Rank(rank=r.rank, node=r.node, pid=_pid(result), gpus=r.gpus, started_at=_time(result, now)))
    running = job.evolve(state=JobState.RUNNING, ranks=tuple(ranks), reason=running_reason(job))
    return Change(job, running)


def _own(
    answer: list[Mapping[str, Any] | FactoryError], launches: list[RankLaunch], job_id: str, rank: int
) -> Mapping[str, Any] | FactoryError:
    for launch, result in zip(launches, answer, strict=True):
        if launch.job.id == job_id and launch.rank.rank == rank:
            return result
    raise AssertionError(f"no launch of {job_id} rank {rank}")  # every rank was asked for


def _said(error: FactoryError, node: str) -> str:
    message = error.message
    return message[len(node) + 2 :] if message.startswith(f"{node}: ") else message


def _pid(result: Mapping[str, Any]) -> int | None:
    pid = result.get("pid")
    return pid if isinstance(pid, int) and not isinstance(pid, bool) else None


def _time(result: Mapping[str, Any], now: float) -> float:
    started = result.get("started_at")
    return float(started) if isinstance(started, (int, float)) and not isinstance(started, bool) else now
