"""`factoryctl power status`'s document: where the applied power policy stands, without asking a node.

The policy (file, kind, D), when its course started, the price now with its age and whether it is stale, and for each
GPU range the last `power apply` met (kept in the state directory, policy_state.py) the action the policy takes now
and, for `optimize`, the throughput lost so far against D. Split from power_policy.py, which asks the nodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from factoryctl.power.policy_apply import PolicyInputs as Inputs

#: Decimal places of the reported loss (as `power simulate`'s percentages: far finer than any curve, no float noise).
PCT_DECIMALS = 9


def status_document(inputs: Inputs) -> dict[str, Any]:
    """The one document `power status` prints (docs/power.md lists its fields)."""
    from factoryctl.model.power import iso_utc_seconds
    from factoryctl.power.policy.config import OptimizePolicy

    started = inputs.started
    applied = inputs.same_course
    ranges = started.ranges if started is not None else ()
    policy, course = inputs.course(ranges[0]) if ranges else _unranged(inputs)
    age = course.price_age_s
    return {
        "schema_version": 1,
        "policy": {
            "file": str(inputs.policy_path),
            "kind": policy.kind,
            "max_throughput_loss": policy.max_throughput_loss if isinstance(policy, OptimizePolicy) else None,
            "sha256": inputs.policy_sha256,
        },
        "curve": inputs.curve.name,
        "price_visibility": inputs.visibility,
        "applied": applied,
        "started_at": iso_utc_seconds(inputs.start_s) if applied else None,
        "course_from": iso_utc_seconds(course.replayed_from_s),
        "interval_start": iso_utc_seconds(course.interval_start_s),
        "interval_end": iso_utc_seconds(course.interval_end_s),
        "price_per_mwh": course.price_per_mwh,
        "price_age_s": age,
        "stale": age is None or age > policy.rules.stale_after_s,
        "ranges": [_range_status(inputs, gpu) for gpu in ranges],
    }


def _unranged(inputs: Inputs) -> tuple[Any, Any]:
    """The policy and its course before any GPU range is known (no `power apply` yet), relative to the largest limit.

    A policy that gives watts cannot be read without a range: said so, rather than as a curve without watts.
    """
    from factoryctl.errors import UsageError
    from factoryctl.power.curve import RelativePowerRange

    try:
        return inputs.course(RelativePowerRange(inputs.curve.min_frac, 1.0, 1.0))
    except UsageError as refused:
        if "in watts" not in refused.message:
            raise
        raise UsageError(
            f"{inputs.policy_path} gives limits in watts, and power status knows no GPU range to convert them with"
            " before the first `power apply`.",
            "`factoryctl power plan` shows each GPU's plan; `power status` says more once `power apply` has run.",
        ) from None


def _range_status(inputs: Inputs, gpu: Any) -> dict[str, Any]:  # noqa: ANN401 - a GpuPowerRange
    """One range's action now, and the loss of its course so far (optimize)."""
    from factoryctl.power.policy_course import loss_so_far, planned_watts

    policy, course = inputs.course(gpu)
    action = course.action
    loss = loss_so_far(policy, course.state)
    return {
        "min_w": gpu.min_w,
        "max_w": gpu.max_w,
        "default_w": gpu.default_w,
        "power_limit_frac": action.power_limit_frac,
        "plan_w": planned_watts(action, gpu),
        "reason": action.reason,
        "clamped": action.clamped,
        "price_used_per_mwh": action.price_used_per_mwh,
        "throughput_loss_pct": None if loss is None else round(100.0 * loss, PCT_DECIMALS) + 0.0,
    }


def status_text(document: dict[str, Any]) -> str:
    """The table form: one `key   value` line per field, then one line per GPU range."""
    from factoryctl.cli.price import price_cell
    from factoryctl.cli.render import format_cell
    from factoryctl.model.telemetry import escape_controls

    policy = document["policy"]
    budget = policy["max_throughput_loss"]
    lines = {
        "policy": f"{policy['kind']} ({policy['file']})" + ("" if budget is None else f", D {budget:g}"),
        "curve": document["curve"],
        "price_visibility": document["price_visibility"],
        "started_at": document["started_at"] or "not applied yet (the course starts now)",
        "interval": f"{document['interval_start']} - {document['interval_end']}",
        "price_per_mwh": price_cell(document["price_per_mwh"]),
        "price_age_s": format_cell(document["price_age_s"]),
        "stale": format_cell(document["stale"]),
    }
    width = max(len(key) for key in lines)
    text = "".join(f"{key.ljust(width)}   {escape_controls(str(value))}\n" for key, value in lines.items())
    for gpu in document["ranges"]:
        loss = gpu["throughput_loss_pct"]
        text += (
            f"range {gpu['min_w']:g}-{gpu['max_w']:g} W (default {gpu['default_w']:g}):"
            f" {gpu['plan_w']:g} W ({gpu['reason']}{', clamped' if gpu['clamped'] else ''})"
            + ("" if loss is None else f", loss so far {loss:g} %")
            + "\n"
        )
    return text
