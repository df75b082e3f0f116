"""When the applied policy started, kept in `<state_dir>/power-policy.json`: where every run's course begins.

`power apply` replays the policy from the moment it started applying (policy_course.py), so that moment outlives the
run. It is recorded with what it is the start of: the policy file's sha256 and the curve's identity; a changed policy
or curve is a new course, from now, with a new loss budget. The GPU ranges the last apply met are kept too, so that
`power status` can say each range's action without asking a node, and each range's checkpoint (the engine's state
after the last interval that had ended, policy_course.py `Checkpoint`), from which the next run resumes its course
instead of replaying it all. A checkpoint that cannot be read is dropped alone: that range's course is replayed from
the start, which gives the same limits, only slower. Only `power apply` writes the file (`plan` and `status` read it,
checkpoints included): whole, beside its place and renamed over it, readable by its owner alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factoryctl.model.power import GpuPowerRange
from factoryctl.power.curve import PowerCurve
from factoryctl.power.policy.engine import EngineState
from factoryctl.power.policy_course import Checkpoint

STATE_NAME = "power-policy.json"


@dataclass(frozen=True)
class Started:
    """A course's start: when, of which policy file (its sha256) and curve (`curve_identity`), the ranges seen.

    `checkpoints` are where each range's course may resume (at most one a range).
    """

    started_at_s: int
    policy_sha256: str
    curve: str
    ranges: tuple[GpuPowerRange, ...] = ()
    checkpoints: tuple[tuple[GpuPowerRange, Checkpoint], ...] = ()

    def checkpoint(self, gpu: GpuPowerRange) -> Checkpoint | None:
        """The checkpoint of this range's course, if one was kept."""
        return dict(self.checkpoints).get(gpu)

    def same_course(self, policy_sha256: str, curve: str) -> bool:
        """Whether the policy and the curve are still the ones this course started with."""
        return (self.policy_sha256, self.curve) == (policy_sha256, curve)


def curve_identity(curve: PowerCurve) -> str:
    """The curve's name and a digest of its points: a curve file measured again is a new course, as a new policy is."""
    digest = hashlib.sha256(repr(curve.points).encode()).hexdigest()[:16]
    return f"{curve.name} (points sha256 {digest})"


def policy_sha256(data: bytes) -> str:
    """The policy file's fingerprint."""
    return hashlib.sha256(data).hexdigest()


def read_started(state_dir: Path) -> Started | None:
    """The recorded start, or None when there is none or it cannot be read (the course then starts now)."""
    try:
        document = json.loads((state_dir / STATE_NAME).read_text(encoding="utf-8"))
        ranges = tuple(_range(r) for r in document.get("ranges", []))
        begun, sha, curve = int(document["started_at"]), str(document["policy_sha256"]), str(document["curve"])
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
    return Started(begun, sha, curve, ranges, _checkpoints(document))


def _range(written: Any) -> GpuPowerRange:  # noqa: ANN401 - JSON
    return GpuPowerRange(float(written[0]), float(written[1]), float(written[2]))


def _checkpoints(document: dict[str, Any]) -> tuple[tuple[GpuPowerRange, Checkpoint], ...]:
    """The checkpoints kept, each as written (JSON keeps a float to the bit); none if any is not as written."""
    try:
        kept = []
        for entry in document.get("checkpoints", []):
            state = entry["state"]
            frac, changed = state["frac"], state["changed_at"]
            engine = EngineState(
                None if frac is None else _number(frac),
                None if changed is None else _integer(changed),
                _number(state["loss_bank"]),
                _integer(state["steps"]),
                _number(state["elapsed"]),
                _integer(state["no_reference"]),
            )
            checkpoint = Checkpoint(_integer(entry["interval_start"]), _text(entry["digest"]), engine)
            kept.append((_range(entry["range"]), checkpoint))
        return tuple(kept)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return ()


def _number(value: Any) -> float:  # noqa: ANN401 - JSON
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(value)
    return float(value)


def _integer(value: Any) -> int:  # noqa: ANN401 - JSON
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(value)
    return int(value)


def _text(value: Any) -> str:  # noqa: ANN401 - JSON
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _written(gpu: GpuPowerRange, checkpoint: Checkpoint) -> dict[str, Any]:
    state = checkpoint.state
    return {
        "range": [gpu.min_w, gpu.max_w, gpu.default_w],
        "interval_start": checkpoint.interval_start_s,
        "digest": checkpoint.digest,
        "state": {
            "frac": state.frac,
            "changed_at": state.changed_at_s,
            "loss_bank": state.loss_bank,
            "steps": state.steps,
            "elapsed": state.elapsed,
            "no_reference": state.no_reference,
        },
    }


def write_started(state_dir: Path, started: Started) -> None:
    """Write the start whole (a temporary file renamed over the old one), mode 0600."""
    document = {
        "started_at": started.started_at_s,
        "policy_sha256": started.policy_sha256,
        "curve": started.curve,
        "ranges": [[r.min_w, r.max_w, r.default_w] for r in started.ranges],
        "checkpoints": [_written(gpu, checkpoint) for gpu, checkpoint in started.checkpoints],
    }
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{STATE_NAME}.", dir=state_dir)  # mkstemp's mode is 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, state_dir / STATE_NAME)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
