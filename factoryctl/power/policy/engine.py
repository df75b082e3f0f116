"""The policy engine: one pure step from (policy, curve, GPU range, visible prices, state) to a power action.

The same step drives the offline simulator and, later, the controller, so what the simulator scores is exactly
what runs on nodes. Order of rules: fail-safe when prices are stale, the policy's choice (a tier, on the last
published price; or the price ladder, on the estimate of the current price), floor and the GPU's range, dwell
(hysteresis), ramp, and last the loss-budget guard of `optimize`, which may override dwell and ramp so that the
promised maximum throughput loss holds whatever the prices do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from factoryctl.model.power import GpuPowerRange, PowerAction
from factoryctl.power.curve import FRAC_EPSILON, PowerCurve
from factoryctl.power.policy.config import CommonRules, OptimizePolicy, Policy, TiersPolicy
from factoryctl.power.policy.lagrange import LagrangeChains
from factoryctl.power.policy.optimizer import ReferenceWindow, ladder_multiplier, loss_allowance
from factoryctl.power.policy.view import PriceView


@dataclass(frozen=True)
class EngineState:
    """What the engine remembers between steps.

    Attributes:
        frac: the limit currently set (None before the first step).
        changed_at_s: when that limit was set.
        loss_bank: unspent throughput-loss credit, in usual intervals at full loss: each interval earns D and
            spends its own loss, both times its length in usual intervals (`PriceView.weight`). With a rolling
            budget `optimize` never lets it go negative (every prefix within D); with a period budget it may
            borrow what the rest of the period can pay back.
        steps: intervals decided so far.
        elapsed: their total length, in usual intervals.
        no_reference: intervals in which `optimize` found no known price in its reference sample (none in the
            history, none published ahead): throughput could not be valued, so the ladder asked for full power.
    """

    frac: float | None = None
    changed_at_s: int | None = None
    loss_bank: float = 0.0
    steps: int = 0
    elapsed: float = 0.0
    no_reference: int = 0


@dataclass(frozen=True)
class EngineSetup:
    """The fixed inputs of every step: the policy, the curve, the GPU's range and the budget period.

    `period_intervals` is how long the loss budget of an `optimize` policy with `loss_budget: period` runs, in
    usual intervals (the simulator passes the series' length); without it the budget is held as `rolling`.
    """

    policy: Policy
    curve: PowerCurve
    gpu: GpuPowerRange
    period_intervals: float | None = None

    def remaining(self, state: EngineState, weight: float = 1.0) -> float | None:
        """Usual intervals left in the budget period, this one (`weight` long) included (None: rolling budget)."""
        policy = self.policy
        if self.period_intervals is None or not isinstance(policy, OptimizePolicy) or policy.loss_budget != "period":
            return None
        return max(self.period_intervals - state.elapsed, weight)

    @property
    def low(self) -> float:
        """The lowest limit the policy may set: the floor, kept within the GPU's range."""
        floor = self.policy.rules.floor_frac
        low = self.gpu.min_frac if floor is None else max(floor, self.gpu.min_frac)
        return min(low, self.high)

    @property
    def high(self) -> float:
        """The highest limit the GPU accepts (1.0: fractions are of the largest limit)."""
        return 1.0

    def chains(self) -> LagrangeChains:
        """Best-response paths over the limits the policy may set."""
        return LagrangeChains.from_points(self.curve.points_between(self.low, self.high))

    def failsafe(self) -> float:
        """The limit used while prices are stale: the configured one, else the policy's own default.

        `optimize` defaults to the cheapest fixed limit that keeps loss within D (spending exactly its budget,
        whatever prices do); `tiers` defaults to its base limit.
        """
        rules = self.policy.rules
        if rules.failsafe_frac is not None:
            return rules.failsafe_frac
        if isinstance(self.policy, OptimizePolicy):
            return self.curve.best_frac(1.0, 0.0, self.low, self.high, 1.0 - self.policy.max_throughput_loss)
        return self.policy.base_frac


def _stale(rules: CommonRules, view: PriceView) -> bool:
    age = view.age_s()
    return age is None or age > rules.stale_after_s


def _hold_rules(rules: CommonRules, state: EngineState, now_s: int, target: float) -> tuple[float, str | None]:
    """Apply dwell then ramp relative to the current limit; returns the limit and the rule that changed it."""
    if state.frac is None:
        return target, None
    reason = None
    dwelling = rules.min_dwell_s and state.changed_at_s is not None and now_s - state.changed_at_s < rules.min_dwell_s
    if dwelling and abs(target - state.frac) > FRAC_EPSILON:
        target, reason = state.frac, "dwell"
    if rules.ramp_frac is not None and abs(target - state.frac) > rules.ramp_frac + FRAC_EPSILON:
        step = rules.ramp_frac if target > state.frac else -rules.ramp_frac
        target, reason = round(state.frac + step, 12), "ramp"  # 0.8 - 0.1 is 0.7, not 0.7000000000000001
    return target, reason


def _guard(
    setup: EngineSetup, view: PriceView, state: EngineState, price: float | None, target: float, reason: str
) -> tuple[float, str]:
    """Raise the limit when `target` would lose more than the budget allows (see `loss_allowance`)."""
    curve, low, high, policy = setup.curve, setup.low, setup.high, setup.policy
    if not isinstance(policy, OptimizePolicy):  # only `optimize` has a budget
        return target, reason
    least_loss = 1.0 - max(p.throughput_rel for p in curve.points_between(low, high))
    weight = view.weight
    allowance = loss_allowance(policy, state.loss_bank, setup.remaining(state, weight), least_loss, weight)
    min_throughput = 1.0 - allowance
    if curve.throughput_rel(target) >= min_throughput - 1e-12:
        return target, reason
    return curve.best_frac(1.0 if price is None else price, 0.0, low, high, min_throughput), "budget"


def decide(
    setup: EngineSetup,
    view: PriceView,
    state: EngineState,
    chains: LagrangeChains | None = None,
    window: ReferenceWindow | None = None,
) -> tuple[PowerAction, EngineState]:
    """The power action for the interval starting at `view.now_s`, and the state after it.

    `chains` may be passed in to save recomputing them every step (they depend only on `setup`); `window` keeps
    `optimize`'s reference sample sorted from one step of a replay to the next (the same action either way).
    """
    policy, rules, curve = setup.policy, setup.policy.rules, setup.curve
    low, high = setup.low, setup.high
    price = view.last_published() if isinstance(policy, TiersPolicy) else view.estimate()
    no_reference = state.no_reference
    if _stale(rules, view) or price is None:
        requested, reason = setup.failsafe(), "failsafe"
    elif isinstance(policy, TiersPolicy):
        requested, reason = policy.cap_for(price), "tier"
    else:
        remaining = setup.remaining(state, view.weight)
        multiplier = ladder_multiplier(policy, chains or setup.chains(), view, state.loss_bank, remaining, window)
        no_reference += math.isinf(multiplier)  # an empty reference sample: throughput is worth anything
        requested, reason = curve.best_frac(price, multiplier, low, high, float("-inf")), "ladder"
    clamped = requested < setup.gpu.min_frac - FRAC_EPSILON or requested > high + FRAC_EPSILON
    target = min(max(requested, low), high)
    if not clamped and target > requested + FRAC_EPSILON:
        reason = "floor"
    if reason != "failsafe":
        target, held = _hold_rules(rules, state, view.now_s, target)
        reason = held or reason
    bank = state.loss_bank
    if isinstance(policy, OptimizePolicy):
        target, reason = _guard(setup, view, state, price, target, reason)
        bank += view.weight * (policy.max_throughput_loss - (1.0 - curve.throughput_rel(target)))
    changed = state.frac is None or abs(target - state.frac) > FRAC_EPSILON
    since = view.now_s if changed else state.changed_at_s
    state_changed = EngineState(target, since, bank, state.steps + 1, state.elapsed + view.weight, no_reference)
    return PowerAction(view.now_s, target, reason, clamped, price), state_changed
