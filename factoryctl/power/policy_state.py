"""When the applied policy started, kept in `<state_dir>/power-policy.json`: where every run's course begins.

`power apply` replays the policy from the moment it started applying (policy_course.py), so that moment outlives the
run. It is recorded with what it is the start of: the policy file's sha256 and the curve's identity; a changed policy
or curve is a new course, from now, with a new loss budget. The GPU ranges the last apply met are kept too, so that
`power status` can say each range's action without asking a node. Only `power apply` writes the file (`plan` and
`status` read it): whole, beside its place and renamed over it, readable by its owner alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from factoryctl.model.power import GpuPowerRange
from factoryctl.power.curve import PowerCurve

STATE_NAME = "power-policy.json"


@dataclass(frozen=True)
class Started:
    """A course's start: when, of which policy file (its sha256) and curve (`curve_identity`), and the ranges seen."""

    started_at_s: int
    policy_sha256: str
    curve: str
    ranges: tuple[GpuPowerRange, ...] = ()

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
        ranges = tuple(GpuPowerRange(float(r[0]), float(r[1]), float(r[2])) for r in document.get("ranges", []))
        return Started(int(document["started_at"]), str(document["policy_sha256"]), str(document["curve"]), ranges)
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None


def write_started(state_dir: Path, started: Started) -> None:
    """Write the start whole (a temporary file renamed over the old one), mode 0600."""
    document = {
        "started_at": started.started_at_s,
        "policy_sha256": started.policy_sha256,
        "curve": started.curve,
        "ranges": [[r.min_w, r.max_w, r.default_w] for r in started.ranges],
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
