"""The power policy applied to GPUs: what `power plan / apply / diff` and the controller's power loop share.

Each run reads factory.yaml's policy, curve and prices (`read_inputs`), replays the policy from when it started
applying up to now for each GPU range met (policy_course.py), plans each GPU (`plan_rows`), sets each group of GPUs
to its plan through `power set`'s own path (`apply_limit`: clamped, audited, serialised on each node by its agents'
limits lock) and records the course (`record_course`, policy_state.py). Nothing here knows a terminal or a typer
context: the CLI gives its progress line and stderr warnings, the controller its log; both get the same plan, so a
second setter finds every GPU at its plan already, which is no change and no audit entry.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factoryctl.config import FactoryConfig
from factoryctl.errors import ConfigError, NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.power import GpuPowerRange, PricePoint, iso_utc_seconds
from factoryctl.model.telemetry import NodeSample
from factoryctl.power.curve import PowerCurve
from factoryctl.power.policy.config import Policy
from factoryctl.power.policy_course import Course
from factoryctl.power.policy_state import Started

if TYPE_CHECKING:
    from factoryctl.power.held_sessions import HeldSessions
    from factoryctl.power.limit_progress import LimitProgress
    from factoryctl.power.limits import LimitChange
    from factoryctl.telemetry.poll import PollResult

NO_POLICY_HINT = (
    "set power.policy in factory.yaml to a policy file (docs/power.md, Policies); try it first with"
    " `factoryctl power simulate --policy FILE`."
)
#: Reads a policy file's text for a GPU range: (path, range, max loss, text) -> Policy (policy_file.py's reader).
PolicyParser = Callable[[Path, GpuPowerRange, "float | None", "str | None"], Policy]
#: A progress line for a replay, by its label: a context giving `course`'s progress callback, or None.
ReplayProgress = Callable[[str], contextlib.AbstractContextManager["Callable[[int, int], None] | None"]]


@contextlib.contextmanager
def no_progress(label: str) -> Iterator[None]:
    """No progress line (the controller's loop; the CLI under -q)."""
    yield None


def parse_policy(path: Path, gpu: GpuPowerRange, max_loss: float | None, text: str | None) -> Policy:
    """policy_file.py's reader (imported when first needed: it brings YAML)."""
    from factoryctl.power.policy_file import parse_policy_file

    return parse_policy_file(path, gpu, max_loss, text)


@dataclass
class PolicyInputs:
    """What every run reads before it asks a node: the config, the policy file, the curve and the prices."""

    config: FactoryConfig
    policy_path: Path
    policy_text: str
    policy_sha256: str
    curve: PowerCurve
    curve_id: str
    points: list[PricePoint]
    offset_s: int
    visibility: str
    started: Started | None
    start_s: int
    now_s: int
    parse: PolicyParser = parse_policy
    progress: ReplayProgress = no_progress
    courses: dict[GpuPowerRange, tuple[Policy, Course]] = field(default_factory=dict)

    @property
    def same_course(self) -> bool:
        """Whether the recorded start is of this policy and curve (else the course starts now)."""
        return self.started is not None and self.started.same_course(self.policy_sha256, self.curve_id)

    def course(self, gpu: GpuPowerRange) -> tuple[Policy, Course]:
        """The policy as parsed for a GPU of this range (its `_pct` and `_w` keys need it), and its course.

        Resumed from the range's checkpoint when it holds; `progress` is told how the replay goes.
        """
        if gpu not in self.courses:
            from factoryctl.power.policy_course import course

            policy = self.parse(self.policy_path, gpu, None, self.policy_text)
            kept = self.started.checkpoint(gpu) if self.started is not None and self.same_course else None
            with self.progress(f"replaying {policy.kind} since {iso_utc_seconds(self.start_s)}") as line:
                replayed = course(
                    self.points,
                    policy,
                    self.curve,
                    gpu,
                    self.visibility,
                    self.start_s,
                    self.now_s,
                    self.offset_s,
                    str(self.policy_path),
                    kept,
                    line,
                )
            self.courses[gpu] = (policy, replayed)
        return self.courses[gpu]


def read_inputs(
    config: FactoryConfig,
    command: str,
    prices: Callable[[], tuple[list[PricePoint], int]],
    clock: Callable[[], float] = time.time,
) -> PolicyInputs:
    """factory.yaml's power settings, the policy file, the curve, then `prices()` (points, market offset); now after.

    A config without a policy or a price source is refused (`ConfigError`), naming `command`.
    """
    from factoryctl.config_schema import config_dir
    from factoryctl.power.policy_state import curve_identity, policy_sha256, read_started
    from factoryctl.textfile import read_utf8

    power = config.settings.power
    if power.policy is None:
        raise ConfigError(f"{config.path} sets no power.policy, so {command} has no policy to apply.", NO_POLICY_HINT)
    if power.price_source is None:
        raise ConfigError(
            f"{config.path} sets no power.price_source, so {command} has no prices to apply the policy on.",
            "set power.price_source (and power.prices) in factory.yaml (docs/power.md, Price-source plugins).",
        )
    base = config_dir(config.path)
    policy_path = Path(from_dir(power.policy, base)).expanduser()
    text = read_utf8(policy_path, "policy file", "check power.policy in factory.yaml.")
    curve = policy_curve(power.curve, power.curve_gpu, power.curve_workload, base)
    points, offset = prices()
    now_s = int(clock())
    started = read_started(config.state_dir)
    sha, curve_id = policy_sha256(text.encode()), curve_identity(curve)
    inputs = PolicyInputs(
        config, policy_path, text, sha, curve, curve_id, points, offset, power.price_visibility, started, now_s, now_s
    )
    if started is not None and inputs.same_course:  # the recorded start holds: the course resumes from it
        inputs.start_s = started.started_at_s
    return inputs


def policy_curve(written: str | None, gpu: str | None, workload: str | None, base: Path | None) -> PowerCurve:
    """factory.yaml's `power.curve` (a refusal of it is a config error), else the built-in A40 curve."""
    from factoryctl.errors import UsageError
    from factoryctl.power.curve_file import builtin_curve, load_curve

    if written is None or gpu is None or workload is None:
        return builtin_curve()
    path = Path(from_dir(written, base)).expanduser()
    try:
        return load_curve(path, gpu, workload)[0]
    except UsageError as refused:
        raise ConfigError(
            f"power.curve: {refused.message}", refused.hint or "check power.curve in factory.yaml."
        ) from None


def from_dir(written: str, base: Path | None) -> str:
    """A path of factory.yaml taken from its directory, as `power.prices` is."""
    from factoryctl.config_schema import from_config_dir

    return from_config_dir(written, base) or written


def gpu_range(gpu: Any) -> GpuPowerRange | None:  # noqa: ANN401 - a GpuSample
    """A GPU's power-limit range, when it reports one (a GPU that cannot set a limit has none)."""
    low, high, default = gpu.power_limit_min_w, gpu.power_limit_max_w, gpu.power_limit_default_w
    if low is None or high is None or not high > 0:
        return None
    return GpuPowerRange(low, high, high if default is None else default)


def plan_rows(inputs: PolicyInputs, samples: list[NodeSample], gpus: list[int] | None) -> list[dict[str, Any]]:
    """One row per addressed GPU with a range: its limit now and its plan, by the course of its range."""
    from factoryctl.power.policy_course import planned_watts

    rows = []
    for sample in samples:
        for gpu in sample.gpus:
            rng = gpu_range(gpu)
            if rng is None or (gpus is not None and gpu.index not in gpus):
                continue
            policy, course = inputs.course(rng)
            action = course.action
            rows.append(
                {
                    "node": sample.node,
                    "index": gpu.index,
                    "power_limit_w": gpu.power_limit_w,
                    "plan_w": planned_watts(action, rng),
                    "clamped": action.clamped,
                    "reason": action.reason,
                    "price_per_mwh": action.price_used_per_mwh,
                    "interval_start": iso_utc_seconds(course.interval_start_s),
                    "policy": policy.kind,
                    "_range": rng,
                    "_node_gpus": len(sample.gpus),  # a node is set whole only when every GPU of it has a plan
                }
            )
    return rows


def read_held(
    held: HeldSessions, nodes: list[NodeSpec], fanout: int, progress: Callable[[int, int], None] | None
) -> tuple[PollResult, list[str]]:
    """The nodes' GPUs as a poll reads them, and the nodes whose session is kept for their change (`read_holding`).

    A node off its plan is then changed over the session that read it: over SSH one login, not two. A node that did
    not answer is its hinted error and a down row, as in every listing (telemetry.poll).
    """
    from factoryctl.power.limits import read_holding
    from factoryctl.telemetry.poll import PollResult, down_sample
    from factoryctl.transport.hints import hinted

    outcomes, kept = read_holding(held, nodes, fanout, progress)
    samples, errors = [], []
    for node, outcome in zip(nodes, outcomes, strict=True):
        if isinstance(outcome, NodeError):
            errors.append(hinted(outcome))
            outcome = down_sample(node.name, outcome, held.config.interval_s)
        samples.append(outcome)
    return PollResult(samples, errors), kept


#: Watts within which a GPU's enforced limit is its plan (drivers keep whole milliwatts; a plan may have fractions).
LIMIT_TOLERANCE_W = 0.001


def differs(row: dict[str, Any]) -> bool:
    """Whether the GPU's enforced limit is not its plan (a GPU that does not say its limit differs)."""
    now = row["power_limit_w"]
    return now is None or abs(float(now) - float(row["plan_w"])) > LIMIT_TOLERANCE_W


def audit_reason(inputs: PolicyInputs, row: dict[str, Any], why: str | None, by: str = "power apply") -> str:
    """What the audit log says of a change: who (`by`), the policy, its rule and the price, then the user's `why`.

    A limit the policy asked outside the GPU's range was clamped before it was asked of the node, so the entry's
    own `clamped` (the node's clamp) is false: the reason says it (DESIGN: a policy's clamp is in the audit log).
    """
    price = row["price_per_mwh"]
    at = "no known price" if price is None else f"{price_text(price)}/MWh"
    said = f"{by}: {row['policy']} policy {inputs.policy_path}: {row['reason']} at {at} ({row['interval_start']})"
    if row["clamped"]:
        said += ", clamped to the GPU's range"
    return f"{said}; {why}" if why else said


def price_text(value: float) -> str:
    """A price exactly, in its shortest form (92.01, 0.004; 90.00 is 90), as the CLI's `price_cell` shows one."""
    number = float(value)
    return f"{number:.0f}" if number.is_integer() and abs(number) < 1e15 else repr(number)


def split_at_plan(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[LimitChange]]:
    """The rows of the nodes to set (a GPU of theirs is off its plan), and the other nodes' GPUs as unchanged.

    A node whose GPUs are all at plan is not asked: over SSH an ask is a login and an agent start, on every node at
    every cron run between price steps. A node with one GPU off is set whole, as before (its agents' limits lock
    serialises it with any other setter). The GPUs left alone are said as the agent answers a set that moves
    nothing (before and after the limit read, not clamped: a plan is within its range), so a run lists them as
    before, and the audit log, which leaves out GPUs that did not move, is the same.
    """
    from factoryctl.power.limits import LimitChange

    off = {row["node"] for row in rows if differs(row)}
    unchanged = [
        LimitChange(row["node"], row["index"], float(row["power_limit_w"]), float(row["power_limit_w"]), False)
        for row in rows
        if row["node"] not in off
    ]
    return [row for row in rows if row["node"] in off], unchanged


Group = tuple[dict[str, Any], list[NodeSpec], "list[int] | None"]


def limit_groups(
    rows: list[dict[str, Any]], nodes: list[NodeSpec], gpus: list[int] | None
) -> dict[tuple[Any, ...], Group]:
    """The GPUs to set alike: per range (one plan), the nodes whose GPUs of that range are the same (all, or a list)."""
    by_node: dict[str, dict[GpuPowerRange, list[dict[str, Any]]]] = {}
    for row in rows:
        by_node.setdefault(row["node"], {}).setdefault(row["_range"], []).append(row)
    spec = {node.name: node for node in nodes}
    groups: dict[tuple[Any, ...], Group] = {}
    for node, ranges in by_node.items():
        # one range on every GPU (a lost GPU, or one that cannot set a limit, has no row: the others by index, or
        # the node refused them all and the policy never reached its healthy GPUs)
        whole = len(ranges) == 1 and gpus is None and all(len(r) == r[0]["_node_gpus"] for r in ranges.values())
        for rng, of_range in ranges.items():
            indexes = None if whole else [row["index"] for row in of_range]
            key = (rng, None if indexes is None else tuple(indexes))
            groups.setdefault(key, (of_range[0], [], indexes))[1].append(spec[node])
    return groups


def apply_groups(
    inputs: PolicyInputs,
    groups: dict[tuple[Any, ...], Group],
    reason_of: Callable[[dict[str, Any]], str],
    limits: tuple[float, int, LimitProgress | None],
    earlier: tuple[list[LimitChange], list[NodeError]],
    held: HeldSessions | None = None,
    cancel: threading.Event | None = None,
) -> tuple[list[LimitChange], list[NodeError]]:
    """Set each group to its plan through `apply_limit` (clamped, audited); a stop brings what every group did.

    `reason_of(row)`: the audit entry's reason for a group's plan; `limits`: (timeout, fanout, progress); `earlier`:
    what the run says before any group (the GPUs found at plan, the nodes that could not be read); `held`: the
    sessions that read the nodes (`read_held`), each node changed over its own. A failure that carries what its
    request did (`LimitsInterrupted`, `LimitsNotRecorded`) is given those and the earlier groups' too, so the
    listing says every GPU, not only the last group's. `cancel` set (the controller's stop) stops the run as an
    interrupt would (`LimitsInterrupted` with `Cancelled`), before the next group or within one (`apply_limit`).
    """
    from factoryctl.power.limits import LimitsInterrupted, LimitsNotRecorded, apply_limit
    from factoryctl.transport.fanout import Cancelled

    timeout, fanout, told = limits
    changes, errors = list(earlier[0]), list(earlier[1])
    for row, nodes, indexes in groups.values():
        if cancel is not None and cancel.is_set():
            raise LimitsInterrupted(changes, errors, Cancelled())
        try:
            done, failed = apply_limit(
                inputs.config, nodes, indexes, row["plan_w"], True, timeout, reason_of(row), fanout, told, held, cancel
            )
        except (LimitsInterrupted, LimitsNotRecorded) as stop:
            stop.changes[:0], stop.errors[:0] = changes, errors
            raise
        changes += done
        errors += failed
    return changes, errors


def record_course(inputs: PolicyInputs, rows: list[dict[str, Any]]) -> None:
    """Write when the course started (now, for a new policy or curve), the ranges met and their checkpoints.

    A range not met this run keeps its checkpoint while the course is the same one; a new course keeps none.
    """
    from factoryctl.power.policy_state import write_started

    if not rows:  # no GPU was planned (every node failed): no course started
        return
    known = inputs.started.ranges if inputs.started is not None else ()
    ranges = tuple(dict.fromkeys([*known, *(row["_range"] for row in rows)]))
    kept = dict(inputs.started.checkpoints) if inputs.started is not None and inputs.same_course else {}
    for gpu, (_, course) in inputs.courses.items():
        if course.checkpoint is None:
            kept.pop(gpu, None)
        else:
            kept[gpu] = course.checkpoint
    checkpoints = tuple((gpu, kept[gpu]) for gpu in ranges if gpu in kept)
    started = Started(inputs.start_s, inputs.policy_sha256, inputs.curve_id, ranges, checkpoints)
    if started != inputs.started:
        write_started(inputs.config.state_dir, started)
