"""`factoryctl sim inject`: faults on simulated nodes (XID, uncorrectable ECC, lost GPU, driver reset, reboot).

The nodes that took the fault share one line under their folded node set (`n[001-200] (200): injected xid into
GPU 2`), as exec folds identical outputs: a line per node was 2,000 lines of the same sentence. A reset or reboot
says what it did (`reset all GPUs: faults cleared, power limits back to default, ...`): "injected reset" read as one
more fault. What can be refused from factory.yaml alone (a GPU a node lacks, an ECC error on a board that withholds
ECC) is refused before any node is asked, so a refusal never leaves some nodes with the fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.options import FANOUT_OPTION

if TYPE_CHECKING:
    from factoryctl.model.inventory import NodeSpec

app = typer.Typer(no_args_is_help=True)


def _fault(xid: int | None, switches: dict[str, bool]) -> dict[str, Any]:
    from factoryctl.errors import UsageError

    chosen: list[dict[str, Any]] = []
    if xid is not None:
        chosen.append({"fault": "xid", "xid": xid})
    chosen += [{"fault": name} for name, on in switches.items() if on]
    if len(chosen) != 1:
        hint = "use one of --xid N, --ecc, --lost, --hot, --reset, --reboot."
        raise UsageError("give exactly one fault to inject.", hint)
    if xid is not None:
        from factoryctl.sim.faults import MAX_XID

        if not 0 < xid <= MAX_XID:
            raise UsageError(
                f"--xid {xid} is not an XID code; nothing was injected.",
                f"XID codes are positive and at most {MAX_XID} (NVML's unsigned 64-bit event data), e.g. --xid 79.",
            )
    return chosen[0]


def _check_gpus(nodes: list[NodeSpec], gpus: list[int] | None) -> None:
    """Refuse GPU indexes a simulated node does not have (its `sim.gpus`) before touching any node.

    Every missing index is named, folded (`n35 has no GPUs 4-9`): naming only the first, 4, left 5-9 to be found
    one refusal at a time.
    """
    from factoryctl.errors import UsageError
    from factoryctl.model.folding import fold_indexes

    for node in nodes:
        count = node.sim.gpus if node.sim is not None else 0  # only simulated nodes get here
        missing = sorted(set(gpus or ()) - set(range(count)))
        if missing:
            lacks = f"GPU {missing[0]}" if len(missing) == 1 else f"GPUs {fold_indexes(missing)}"
            has = "no GPUs" if count == 0 else "GPU 0" if count == 1 else f"GPUs 0-{count - 1}"
            raise UsageError(
                f"{node.name} has no {lacks} (it has {has}); nothing was injected.",
                f"see `factoryctl gpus {node.name}`.",
            )


def _check_ecc_reported(nodes: list[NodeSpec], fault: dict[str, Any]) -> None:
    """Refuse an ECC error for nodes whose `sim: unsupported:` withholds ECC, before any node is asked.

    Nothing could report it there; the simulated driver refuses it too (`factoryctl.sim.faults.check_reportable`).
    """
    from factoryctl.cli.render import fold
    from factoryctl.errors import UsageError
    from factoryctl.sim.nvml_constants import UNSUPPORTABLE_FIELDS

    if fault["fault"] != "ecc":
        return
    counter = "nvmlDeviceGetTotalEccErrors"
    withheld: dict[str, str] = {}  # node -> the first `unsupported` entry that withholds ECC
    for node in nodes:
        listed = node.sim.unsupported if node.sim is not None else ()
        found = [name for name in listed if name == counter or counter in UNSUPPORTABLE_FIELDS.get(name, ())]
        if found:
            withheld[node.name] = found[0]
    if not withheld:
        return
    names, entries = fold(list(withheld)), " or ".join(dict.fromkeys(withheld.values()))
    whose = "this node's" if len(withheld) == 1 else "these nodes'"
    its = "its sim config lists" if len(withheld) == 1 else "their sim configs list"
    raise UsageError(
        f"{names}: {whose} simulated GPUs have no ECC reporting ({its} {entries} as unsupported), so an ECC error "
        "would never be seen; nothing was injected.",
        f"remove {entries} from {names}'s `sim: unsupported:` in factory.yaml to inject ECC errors there.",
    )


def _gpu_words(gpus: list[int] | None) -> str:
    if not gpus:
        return "all GPUs"
    return f"GPU {gpus[0]}" if len(gpus) == 1 else f"GPUs {','.join(map(str, gpus))}"


def _done(fault: dict[str, Any], gpus: list[int] | None) -> str:
    """What the fault did, after the nodes' names: `injected xid into GPU 2`, `reset all GPUs: faults cleared, ...`.

    A reset (and a reboot) is a driver reload (`factoryctl.sim.faults.apply_fault`): lost GPUs back, volatile ECC
    counts and cooling faults cleared, limits back to default, the energy counter restarted; a reboot also cools.
    """
    words = _gpu_words(gpus)
    if fault["fault"] not in ("reset", "reboot"):
        return f"injected {fault['fault']} into {words}"
    one = gpus is not None and len(gpus) == 1
    limits, counters = ("limit", "counter") if one else ("limits", "counters")
    done = f"faults cleared, power {limits} back to default, energy {counters} from 0"
    if fault["fault"] == "reset":
        return f"reset {words}: {done}"
    return f"rebooted {words}: {done}, {'GPU' if one else 'GPUs'} cold"


@app.command("inject")
def inject(
    ctx: typer.Context,
    target: str = context.REQUIRED_GPU_TARGET_ARG,
    xid: int | None = typer.Option(None, "--xid", help="Raise this XID event (e.g. 79: GPU fell off the bus)."),
    ecc: bool = typer.Option(False, "--ecc", help="An uncorrectable ECC error."),
    lost: bool = typer.Option(False, "--lost", help="The GPU is lost (every query fails)."),
    reset: bool = typer.Option(
        False, "--reset", help="A driver reload: clears faults, limits to default, the energy counter restarts."
    ),
    reboot: bool = typer.Option(False, "--reboot", help="A reboot: as reset, and the GPUs start cold."),
    hot: bool = typer.Option(False, "--hot", help="A cooling failure: temperature climbs into thermal slowdown."),
    timeout: float = context.TIMEOUT_OPTION,
    fanout: int = FANOUT_OPTION,
) -> None:
    """Inject a fault into simulated GPUs; refused on real nodes."""
    from factoryctl.cli.listing import ERROR_HINTS
    from factoryctl.cli.render import fold, report_node_errors
    from factoryctl.config import parse_gpu_target
    from factoryctl.errors import NodeError, UsageError, most_severe
    from factoryctl.telemetry.poll import agent_session, check_agent_cache, fan_out

    fault = _fault(xid, {"ecc": ecc, "lost": lost, "reset": reset, "reboot": reboot, "hot": hot})
    config = context.load(ctx)
    node_part, gpus = parse_gpu_target(target)
    nodes = config.resolve_target(node_part)
    real = [n.name for n in nodes if n.sim is None]
    if real:
        raise UsageError(
            f"{', '.join(real)} {'is not a simulated node' if len(real) == 1 else 'are not simulated nodes'}; nothing was injected.",
            "faults can only be injected into nodes with `sim:` in factory.yaml.",
        )
    _check_gpus(nodes, gpus)
    _check_ecc_reported(nodes, fault)
    check_agent_cache(nodes)

    def inject_one(node: NodeSpec) -> dict[str, Any]:
        with agent_session(node, config, timeout) as session:
            return session.request("inject", timeout=timeout, gpus=gpus, **fault)

    outcomes = fan_out(nodes, inject_one, fanout)
    errors = [o for _, o in outcomes if isinstance(o, NodeError)]
    injected = [node.name for node, outcome in outcomes if not isinstance(outcome, NodeError)]
    if injected:
        names = fold(injected) if len(injected) == 1 else f"{fold(injected)} ({len(injected)})"
        typer.echo(f"{names}: {_done(fault, gpus)}")
    report_node_errors((e.as_report() for e in errors), ERROR_HINTS)
    raise typer.Exit(int(most_severe([e.exit_code for e in errors])))
