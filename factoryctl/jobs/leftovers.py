"""Ranks that must not run on: owed kills (their node could not be told) and strays (a launch no job holds).

A gang is requeued, failed or cancelled while one of its nodes is silent (down, partitioned): its rank there may
still run, holding GPUs the scheduler now gives to others, and writing the job's checkpoints beside its requeued
copy. Each (node, launch) that could not be told is kept in the store (meta `scheduler.owed_kills`), and every pass
first SIGKILLs those whose node the store sees up again, forgetting each once its node took the kill.

Owed kills cannot cover a launch the store never learnt of (a launch that answered too late, a pass killed before it
wrote what it owed, a store created again, a node dropped from factory.yaml and put back). So every node a pass
works on (checking its ranks, or launching on it) is also swept: its live ranks whose launch is no active job's
(`sweep_strays`) are SIGKILLed before anything else starts there. Live: the command runs, or it ended while a worker
it left (`setsid`, carrying the rank's mark) lives on and holds its GPUs (`group_running`). The node's own records
are the truth of what runs on it; the store's are the truth of what should.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from factoryctl.config import FactoryConfig
from factoryctl.errors import NodeError
from factoryctl.jobs.node_calls import on_nodes
from factoryctl.jobs.rank_env import launch_id
from factoryctl.model.jobs import Job
from factoryctl.store.jobs import OWED_KILLS_KEY
from factoryctl.store.sqlite import Store
from factoryctl.transport.session import AgentSession

#: (node, launch): a launch being `rank_env.launch_id` of its job, as its node knows it.
Owed = tuple[str, str]


@dataclass
class PassNotes:
    """What a pass learnt beside its job changes: kills it owes, strays it killed, nodes that did not answer."""

    #: The launches active jobs hold (`rank_env.launch_id`): every other running launch is a stray.
    active_launches: frozenset[str] = frozenset()
    owed: list[Owed] = field(default_factory=list)
    strays: list[Owed] = field(default_factory=list)
    silent: set[str] = field(default_factory=set)
    #: (node, launch) of a preempted gang's ranks whose SIGTERM the node did not take (`preempting.begin_stops`).
    unsignalled: list[Owed] = field(default_factory=list)


def sweep_strays(session: AgentSession, node: str, notes: PassNotes) -> None:
    """SIGKILL every live rank on the node whose launch no active job holds; each noted in `notes.strays`.

    The agent answers `running` with the ranks that have a live process (`group_running`): also a launch whose
    command ended but whose daemonised worker lives on. An agent from before that answers those still running only.
    """
    live = session.ranks(None, running=True)
    strays = sorted({str(r.get("job")) for r in live if r.get("job") not in notes.active_launches})
    for launch in strays:
        session.kill_ranks(launch, "KILL")
        notes.strays.append((node, launch))


def launches_of(jobs: Sequence[Job]) -> list[Owed]:
    """Each (node, launch) of these jobs' ranks."""
    return [(r.node, launch_id(job)) for job in jobs for r in job.ranks]


def kill_launches(config: FactoryConfig, launches: Sequence[Owed], signal: str = "KILL") -> dict[str, NodeError]:
    """Signal the ranks of each (node, launch); the nodes that could not be told, with their error."""
    by_node: dict[str, list[str]] = {}
    for node, launch in launches:
        by_node.setdefault(node, []).append(launch)

    def kill(session: AgentSession, node: str) -> None:
        for launch in dict.fromkeys(by_node[node]):
            session.kill_ranks(launch, signal)

    return {n: o for n, o in on_nodes(config, list(by_node), kill).items() if isinstance(o, NodeError)}


def owed_kills(store: Store, key: str = OWED_KILLS_KEY) -> list[Owed]:
    """The kills still owed (an unreadable value is none: it was written by this module only).

    `key`: another list of owed signals kept the same way (`OWED_TERMS_KEY`, a preemption's SIGTERMs).
    """
    found = store.scheduler_value(key, [])
    return [(str(p[0]), str(p[1])) for p in found if isinstance(p, list) and len(p) == 2]


def owe_kills(store: Store, launches: Sequence[Owed], key: str = OWED_KILLS_KEY) -> None:
    """Remember kills that could not be made, for the passes to come."""
    if launches:
        kept = list(dict.fromkeys([*owed_kills(store, key), *launches]))
        store.set_scheduler_value(key, kept)


def forgive_kills(store: Store, made: Sequence[Owed], key: str = OWED_KILLS_KEY) -> None:
    """Forget owed kills that were made after all (a stop that reached its nodes)."""
    owed = owed_kills(store, key)
    kept = [o for o in owed if o not in set(made)]
    if len(kept) != len(owed):
        store.set_scheduler_value(key, kept)


def settle_kills(config: FactoryConfig, store: Store, up: Collection[str]) -> list[Owed]:
    """SIGKILL the owed launches whose node is up again (or gone from factory.yaml: forgotten); those made."""
    owed = owed_kills(store)
    due = [o for o in owed if o[0] in up or o[0] not in config.nodes]
    if not due:
        return []
    failed = kill_launches(config, [o for o in due if o[0] in config.nodes])
    made = [o for o in due if o[0] not in failed]
    store.set_scheduler_value(OWED_KILLS_KEY, [o for o in owed if o not in made])
    return made
