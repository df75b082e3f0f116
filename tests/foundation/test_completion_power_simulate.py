"""`power simulate --gpu` and `--workload` complete the names of the --curve file given before them.

They offered nothing: the names a curve file holds are the only ones the command takes (docs/power.md, Naming a
curve), and typing them from memory is what completion is for. Only a regular file is read (a FIFO would hold the
TAB), and a file that is missing or not a curve offers nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CURVES = (
    "gpu,workload,pl_frac,throughput_rel,power_rel\n"
    "A40,squad/bert_base,1,1,1\n"
    "A40,squad/bert_base,0.5,0.8,0.6\n"
    "A40,sentiment140/bert_base,1,1,1\n"
    "V100,imagenet/resnet50,1,1,1\n"
    "A100,squad/bert_base,1,1,1\n"
)
SIMULATE = "factoryctl power simulate --price-visibility day-ahead"


def _complete(words: str, cwd: Path) -> list[str]:
    """What bash completion offers for `words` (the last one being completed), asked as bash asks it."""
    env = {**os.environ, "_FACTORYCTL_COMPLETE": "complete_bash", "COMP_WORDS": words}
    env["COMP_CWORD"] = str(len(words.split(" ")) - 1)
    done = subprocess.run(
        [sys.executable, "-m", "factoryctl"], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_gpu_offers_the_gpus_of_the_curve_file(tmp_path: Path) -> None:
    (tmp_path / "curves.csv").write_text(CURVES)
    assert _complete(f"{SIMULATE} --curve curves.csv --gpu ", tmp_path) == ["A40", "V100", "A100"]
    assert _complete(f"{SIMULATE} --curve curves.csv --gpu A", tmp_path) == ["A40", "A100"]


def test_workload_offers_the_workloads_of_the_gpu_given(tmp_path: Path) -> None:
    (tmp_path / "curves.csv").write_text(CURVES)
    assert _complete(f"{SIMULATE} --curve curves.csv --gpu a40 --workload ", tmp_path) == [
        "squad/bert_base",
        "sentiment140/bert_base",
    ]
    assert _complete(f"{SIMULATE} --gpu V100 --curve curves.csv --workload ", tmp_path) == ["imagenet/resnet50"]
    assert _complete(f"{SIMULATE} --curve curves.csv --workload s", tmp_path) == [  # no --gpu: every GPU's
        "squad/bert_base",
        "sentiment140/bert_base",
    ]


def test_no_regular_curve_file_offers_nothing(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")  # nobody writes it: reading it would hold the TAB
    (tmp_path / "other.csv").write_text("job_id,submit_time_s\na,1\n")
    for curve in ("missing.csv", "fifo", "-", "other.csv"):
        assert _complete(f"{SIMULATE} --curve {curve} --gpu ", tmp_path) == [], curve
        assert _complete(f"{SIMULATE} --curve {curve} --workload ", tmp_path) == [], curve
    assert _complete(f"{SIMULATE} --gpu ", tmp_path) == []


def test_power_offers_plan_apply_diff_status_and_report(tmp_path: Path) -> None:
    """The policy commands and `report` are commands now (no longer planned): completion offers them all."""
    every = ["simulate", "report", "set", "reset", "plan", "apply", "diff", "status"]
    assert _complete("factoryctl power ", tmp_path) == every
    assert _complete("factoryctl power s", tmp_path) == ["simulate", "set", "status"]
    assert _complete("factoryctl power a", tmp_path) == ["apply"]
    assert _complete("factoryctl power r", tmp_path) == ["report", "reset"]
    assert _complete("factoryctl power d", tmp_path) == ["diff"]
