"""Policy definitions (tiers, optimize) and the rules they share, parsed strictly from a policy file's mapping.

A policy file is the operator's contract with the engine, so a typo must be an error with a suggestion rather
than a silently ignored key. Percentages are of the GPU's default power limit; internally every limit is a
fraction of the GPU's largest limit (`power_limit_frac`), the unit the curve and the simulator speak.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from factoryctl.errors import UsageError
from factoryctl.model.power import GpuPowerRange
from factoryctl.power.curve import RelativePowerRange
from factoryctl.textfile import exact_number

#: Keys every policy accepts (the common rules), then each kind's own.
COMMON_KEYS = (
    "policy",
    "floor_pct",
    "floor_w",
    "min_dwell_minutes",
    "ramp_pct",
    "ramp_w",
    "failsafe_pct",
    "failsafe_w",
    "stale_after_minutes",
)
OPTIMIZE_KEYS = ("max_throughput_loss", "loss_budget", "history_hours", "reserve_hours", "spend_hours")
#: How the loss budget is held: over the whole period being run (`period`), or at every instant (`rolling`).
LOSS_BUDGETS = ("period", "rolling")
TIERS_KEYS = ("tiers", "base_pct", "base_w")
TIER_KEYS = ("above_per_mwh", "cap_pct", "cap_w")
#: The largest limit (cap, base, fail-safe, ramp) a policy may give, in units of the GPU's largest limit: above
#: the range a cap is clamped, but twice the largest limit is a unit mistake (as `MAX_REL` in a curve file).
MAX_LIMIT_FRAC = 2.0


@dataclass(frozen=True)
class CommonRules:
    """Rules applied after a policy's own choice, in this order: fail-safe, floor, dwell, ramp, GPU clamp.

    Attributes:
        floor_frac: lowest limit the policy may set (None: the GPU's minimum).
        min_dwell_s: a new limit is held at least this long (hysteresis); 0 disables.
        ramp_frac: largest change of limit from one interval to the next; None disables.
        failsafe_frac: limit used while prices are stale (None: the policy's own default).
        stale_after_s: prices are stale when the newest known price started longer ago than this.
    """

    floor_frac: float | None = None
    min_dwell_s: int = 0
    ramp_frac: float | None = None
    failsafe_frac: float | None = None
    stale_after_s: int = 7200


@dataclass(frozen=True)
class Tier:
    """At or above `above_per_mwh`, cap at `cap_frac` (as requested: clamping happens when it is applied)."""

    above_per_mwh: float
    cap_frac: float


@dataclass(frozen=True)
class TiersPolicy:
    """Price thresholds to caps; below every threshold the limit is `base_frac`. Fail-safe default: `base_frac`."""

    tiers: tuple[Tier, ...]
    base_frac: float = 1.0
    rules: CommonRules = field(default_factory=CommonRules)
    kind: str = "tiers"

    def cap_for(self, price: float) -> float:
        """The requested cap for a price: the highest threshold the price reaches."""
        chosen = self.base_frac
        for tier in self.tiers:
            if price >= tier.above_per_mwh:
                chosen = tier.cap_frac
        return chosen


@dataclass(frozen=True)
class OptimizePolicy:
    """Keep throughput loss within `max_throughput_loss` while buying as little expensive power as possible.

    Attributes:
        max_throughput_loss: D, the largest allowed mean throughput loss (a fraction, 0.05 = 5 %).
        loss_budget: `period`: mean loss over the budget period (the simulated span) at most D, budget may be
            spent ahead of being earned; `rolling`: mean loss since the start at most D at every instant.
        history_s: how much past price history stands in for the unknown future when pricing throughput.
        reserve_s: (`rolling`) the loss budget, in time at rate D, kept in hand for expensive intervals.
        spend_s: (`rolling`) how fast budget above the reserve is spent (and a deficit below it rebuilt).
    """

    max_throughput_loss: float
    loss_budget: str = "period"
    history_s: int = 7 * 86400
    reserve_s: int = 86400
    spend_s: int = 86400
    rules: CommonRules = field(default_factory=CommonRules)
    kind: str = "optimize"


Policy = TiersPolicy | OptimizePolicy


def _reject_unknown(mapping: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(allowed)}"
            raise UsageError(f"unknown key {key!r} in {where}", hint=hint)


def _shown(value: object) -> str:
    """A value for an error message, bounded (a YAML alias bomb's nested lists wrote 39 MB to stderr, or never ended)."""
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict = 2, 4, 4  # breadth multiplies with depth: keep both small
    text = short.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _number(mapping: Mapping[str, Any], key: str, where: str) -> float | None:
    """A number given for `key`, or None; not a number, or not finite (`.inf`, `.nan`), is refused naming both."""
    value = mapping.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{key} in {where} must be a number, not {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int of 400 digits: past any float, so past any bound
        number = math.inf
    if not math.isfinite(number):  # `.inf` minutes overflowed `round` (a traceback); an infinite cap only clamped
        raise UsageError(
            f"{key} in {where} must be a finite number, not {_shown(value)}",
            hint=f"give {key} a finite number (`.inf`, `.nan` and numbers past 1e308 are not).",
        )
    return number


def _limit(mapping: Mapping[str, Any], stem: str, gpu: GpuPowerRange, where: str) -> float | None:
    """A limit given as `<stem>_pct` (of the default limit) or `<stem>_w`, as a fraction of the largest limit."""
    pct = _number(mapping, f"{stem}_pct", where)
    watts = _number(mapping, f"{stem}_w", where)
    if pct is not None and watts is not None:
        raise UsageError(f"give {stem}_pct or {stem}_w in {where}, not both")
    if pct is not None:
        if pct < 0:
            raise UsageError(f"{stem}_pct in {where} must not be negative")
        return pct / 100.0 * gpu.default_frac
    if watts is not None:
        if isinstance(gpu, RelativePowerRange):
            raise UsageError(
                f"{stem}_w in {where} is in watts, but the curve file gives no watts to convert it with",
                hint=f"give {stem}_pct instead, or add max_power_limit_w (the GPU's largest limit) to the curve file.",
            )
        if watts < 0:
            raise UsageError(f"{stem}_w in {where} must not be negative")
        return gpu.frac(watts)
    return None


def _largest(mapping: Mapping[str, Any], stem: str, gpu: GpuPowerRange, times: float = 1.0) -> str:
    """`times` the GPU's largest limit in the unit the file gave `<stem>` in (`100 %` of the default, or `400 W`)."""
    if mapping.get(f"{stem}_pct") is not None:
        return f"{times * 100.0 / gpu.default_frac:g} %"
    return f"{times * gpu.max_w:g} W"


def _bounded_limit(mapping: Mapping[str, Any], stem: str, gpu: GpuPowerRange, where: str) -> float | None:
    """`_limit`, refusing more than MAX_LIMIT_FRAC times the GPU's largest limit: that is a unit mistake, not a limit.

    Up to it, a cap above the GPU's range is clamped (and flagged `clamped`) as documented; far beyond it (`cap_w`
    in milliwatts, `cap_pct: 8000`) the clamp would silently hide the mistake.
    """
    limit = _limit(mapping, stem, gpu, where)
    if limit is not None and limit > MAX_LIMIT_FRAC + 1e-9:
        raise UsageError(
            f"{_given(mapping, stem)} in {where} is more than {MAX_LIMIT_FRAC:g} times the GPU's largest limit"
            f" ({_largest(mapping, stem, gpu)}), so it is not a limit this GPU can have",
            hint=f"give {stem}_pct in % of the default limit (80 for 80 %) or {stem}_w in watts, at most"
            f" {_largest(mapping, stem, gpu, MAX_LIMIT_FRAC)}.",
        )
    return limit


#: The longest duration a policy may give (a dwell, a history, a budget's hours): far past any price file, and small
#: enough that it stays a float once scaled to seconds.
MAX_POLICY_SECONDS = 100 * 365 * 86400
_UNITS: dict[float, str] = {60: "minutes", 3600: "hours"}


def _seconds(mapping: Mapping[str, Any], key: str, scale: float, default: int, where: str) -> int:
    value = _number(mapping, key, where)
    if value is None:
        return default
    if value < 0:
        raise UsageError(f"{key} in {where} must not be negative")
    if value * scale > MAX_POLICY_SECONDS:  # 1e308 minutes overflowed `round` once scaled (a traceback)
        raise UsageError(
            f"{key} in {where} must be at most {MAX_POLICY_SECONDS / scale:.0f} (100 years), not {_shown(value)}",
            hint=f"give {key} a duration in {_UNITS.get(scale, 'its unit')}.",
        )
    return round(value * scale)


def _given(mapping: Mapping[str, Any], stem: str) -> str:
    """`<stem>_pct 500` or `<stem>_w 900`, as the file gave it, for messages."""
    key = f"{stem}_pct" if mapping.get(f"{stem}_pct") is not None else f"{stem}_w"
    return f"{key} {mapping.get(key)}"


def _floor(mapping: Mapping[str, Any], gpu: GpuPowerRange, where: str) -> float | None:
    """The floor; above the GPU's largest limit it would leave the policy nothing to choose, so it is refused.

    A floor below the GPU's minimum is the minimum (as with no floor), like a cap below it is clamped.
    """
    floor = _limit(mapping, "floor", gpu, where)
    if floor is not None and floor > 1.0 + 1e-9:
        largest = _largest(mapping, "floor", gpu)
        raise UsageError(
            f"{_given(mapping, 'floor')} in {where} is above the GPU's largest limit ({largest}), so the policy could"
            " never lower the limit",
            hint=f"give a floor up to {largest}, or leave it out for the GPU's minimum.",
        )
    return floor


def _ramp(mapping: Mapping[str, Any], gpu: GpuPowerRange, where: str) -> float | None:
    """The ramp; a ramp of 0 would hold the first limit for ever, so it is refused (no ramp key: no ramp limit)."""
    ramp = _bounded_limit(mapping, "ramp", gpu, where)
    if ramp is not None and ramp <= 0:
        raise UsageError(
            f"{_given(mapping, 'ramp')} in {where} would hold the first limit for ever",
            hint="give the largest change per interval, e.g. ramp_pct: 10, or leave it out for no ramp limit.",
        )
    return ramp


def parse_rules(mapping: Mapping[str, Any], gpu: GpuPowerRange, where: str) -> CommonRules:
    """The common rules of a policy mapping."""
    return CommonRules(
        floor_frac=_floor(mapping, gpu, where),
        min_dwell_s=_seconds(mapping, "min_dwell_minutes", 60, 0, where),
        ramp_frac=_ramp(mapping, gpu, where),
        failsafe_frac=_bounded_limit(mapping, "failsafe", gpu, where),
        stale_after_s=_seconds(mapping, "stale_after_minutes", 60, 7200, where),
    )


def parse_tiers(mapping: Mapping[str, Any], gpu: GpuPowerRange, where: str) -> TiersPolicy:
    """A tiers policy: `tiers: [{above_per_mwh, cap_pct | cap_w}, ...]` plus optional `base_pct`/`base_w`."""
    _reject_unknown(mapping, COMMON_KEYS + TIERS_KEYS, where)
    raw = mapping.get("tiers")
    if not isinstance(raw, list) or not raw:
        raise UsageError(f"a tiers policy needs a non-empty list under 'tiers' in {where}")
    tiers: list[Tier] = []
    for number, entry in enumerate(raw, start=1):
        place = f"tier {number} of {where}"
        if not isinstance(entry, Mapping):
            raise UsageError(f"{place} must be a mapping with above_per_mwh and cap_pct or cap_w")
        _reject_unknown(entry, TIER_KEYS, place)
        above = _number(entry, "above_per_mwh", place)
        cap = _bounded_limit(entry, "cap", gpu, place)
        if above is None or cap is None:
            raise UsageError(f"{place} needs above_per_mwh and cap_pct or cap_w")
        same = next((n for n, tier in enumerate(tiers, start=1) if tier.above_per_mwh == above), None)
        if same is not None:
            raise UsageError(
                f"tiers {same} and {number} of {where} both start at {exact_number(above)} per MWh, so which cap applies is a guess",
                hint="give each above_per_mwh once, with the cap it should set.",
            )
        tiers.append(Tier(above, cap))
    tiers.sort(key=lambda t: t.above_per_mwh)
    base = _bounded_limit(mapping, "base", gpu, where)
    return TiersPolicy(tuple(tiers), 1.0 if base is None else base, parse_rules(mapping, gpu, where))


def parse_optimize(
    mapping: Mapping[str, Any], gpu: GpuPowerRange, where: str, max_throughput_loss: float | None = None
) -> OptimizePolicy:
    """An optimize policy; `max_throughput_loss` from the command line fills in (and must agree with) the file."""
    _reject_unknown(mapping, COMMON_KEYS + OPTIMIZE_KEYS, where)
    loss = _number(mapping, "max_throughput_loss", where)
    if loss is not None and max_throughput_loss is not None and abs(loss - max_throughput_loss) > 1e-12:
        raise UsageError(
            f"max_throughput_loss is {loss} in {where} but {max_throughput_loss} on the command line",
            hint="give it in one place, or make both agree.",
        )
    from_file = loss is not None
    loss = max_throughput_loss if loss is None else loss
    if loss is None:
        raise UsageError(
            f"an optimize policy needs max_throughput_loss in {where}",
            hint="set max_throughput_loss (e.g. 0.05 for a 5 % loss of throughput) in the file, or on the command line.",
        )
    check_loss_budget(loss, where if from_file else None)
    budget = mapping.get("loss_budget", "period")
    if budget not in LOSS_BUDGETS:
        raise UsageError(f"loss_budget in {where} is {_shown(budget)}", hint="use period or rolling.")
    return OptimizePolicy(
        max_throughput_loss=loss,
        loss_budget=budget,
        history_s=_history(mapping, where),
        reserve_s=_seconds(mapping, "reserve_hours", 3600, 86400, where),
        spend_s=max(1, _seconds(mapping, "spend_hours", 3600, 86400, where)),
        rules=parse_rules(mapping, gpu, where),
    )


def _history(mapping: Mapping[str, Any], where: str) -> int:
    """`history_hours` in seconds; 0 holds no price, so the multiplier would have nothing to be priced on.

    In realtime that ran every interval at full power with no word (saving 0 %). A history shorter than the prices'
    interval is refused too, once the prices are known (`simulator.check_history`).
    """
    history = _seconds(mapping, "history_hours", 3600, 7 * 86400, where)
    if history <= 0:
        raise UsageError(
            f"history_hours {_shown(mapping.get('history_hours'))} in {where} holds no price interval, so the policy"
            " would have no past price to value throughput on",
            hint="give history_hours in hours, at least one price interval (1 for hourly prices; the default, 168, is"
            " a week), or leave it out.",
        )
    return history


def check_loss_budget(loss: float, where: str | None = None) -> None:
    """D must be a fraction in [0, 1); `where` names the policy file that gave it (None: the command line)."""
    if not 0 <= loss < 1:
        given = "the maximum throughput loss" if where is None else f"max_throughput_loss in {where}"
        raise UsageError(
            f"{given} must be a fraction in [0, 1), not {exact_number(loss)}",
            hint="0.05 allows a 5 % loss of throughput.",
        )


def parse_policy(
    mapping: Mapping[str, Any], gpu: GpuPowerRange, where: str = "the policy", max_throughput_loss: float | None = None
) -> Policy:
    """A policy from a file's top-level mapping; `policy:` names the kind (`optimize` when absent)."""
    if not isinstance(mapping, Mapping):
        raise UsageError(f"{where} must be a mapping of settings")
    kind = mapping.get("policy", "optimize")
    if kind == "tiers":
        return parse_tiers(mapping, gpu, where)
    if kind == "optimize":
        return parse_optimize(mapping, gpu, where, max_throughput_loss)
    raise UsageError(f"unknown policy {_shown(kind)} in {where}", hint="policy is 'tiers' or 'optimize'.")
