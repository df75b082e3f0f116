"""CLI start-up: `factoryctl --help` against `python -c "import typer"`, as a ratio of medians (budget 1.5x).

Both run side by side, interleaved, so machine noise hits both alike. Also checks what `--help` and a completion
request import (no paramiko, textual or pynvml).

    python benchmarks/bench_startup.py [--runs 15] [--config F.yaml] [--tab-config F.yaml]

`--config F.yaml` also times `factoryctl -c F.yaml nodes` (a listing that asks every node once: for a small local
simulated fleet, start-up plus the local agents' starts), reported against `import typer` the same way. Children run
with `python -P`, so the current directory never shadows PYTHONPATH: `PYTHONPATH=/path/to/other/checkout` times that
checkout's code from anywhere (`factoryctl` in the output says which ran).

`--tab-config F.yaml` also times TARGET completion (`factoryctl nodes list g<TAB>`, bash) on a copy of F.yaml: the
first TAB after an edit (a comment appended before each run, so the completion cache misses) and the TAB after it
(a hit), with a cache directory of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Bytecode caching on, as for any installed package (pip compiles site-packages at install; this machine sets
#: PYTHONDONTWRITEBYTECODE, which would make every run recompile factoryctl but not typer's precompiled files).
BASE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env or BASE_ENV, check=False)
    return time.perf_counter() - start


def tab_times(config: str, runs: int) -> dict[str, float]:
    """Medians of the first TAB after an edit of factory.yaml (a miss) and of the next TAB (a hit), in ms."""
    with tempfile.TemporaryDirectory(prefix="bench-tab-") as scratch:
        copy = Path(scratch) / "factory.yaml"
        shutil.copyfile(config, copy)
        copy.chmod(0o600)
        env = {
            **BASE_ENV,
            "FACTORYCTL_CONFIG": str(copy),
            "XDG_CACHE_HOME": scratch,
            "_FACTORYCTL_COMPLETE": "complete_bash",
            "COMP_WORDS": "factoryctl nodes list g",
            "COMP_CWORD": "3",
        }
        cmd = [sys.executable, "-P", "-m", "factoryctl"]
        misses, hits = [], []
        for run in range(runs):
            with copy.open("a") as out:
                out.write(f"# edit {run}\n")
            misses.append(timed(cmd, env))
            hits.append(timed(cmd, env))
    return {
        "tab_miss_median_ms": round(statistics.median(misses) * 1000, 1),
        "tab_hit_median_ms": round(statistics.median(hits) * 1000, 1),
    }


def heavy_modules(code: str) -> list[str]:
    probe = f"import sys\n{code}\nsys.stderr.write('HEAVY=' + ','.join(m for m in ('textual', 'paramiko', 'pynvml') if m in sys.modules))"
    err = subprocess.run([sys.executable, "-P", "-c", probe], capture_output=True, text=True, check=False).stderr
    return [m for m in err.rsplit("HEAVY=", 1)[-1].strip().split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--config", help="also time `factoryctl -c CONFIG nodes` (e.g. a 4-node local fleet)")
    parser.add_argument("--tab-config", help="also time TARGET completion on a copy of this factory.yaml")
    args = parser.parse_args()
    help_cmd = [sys.executable, "-P", "-m", "factoryctl", "--help"]
    typer_cmd = [sys.executable, "-P", "-c", "import typer"]
    nodes_cmd = [sys.executable, "-P", "-m", "factoryctl", "-c", args.config, "nodes"] if args.config else None
    complete_env = {
        **os.environ,
        "_FACTORYCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "factoryctl nodes ",
        "COMP_CWORD": "2",
    }
    complete_cmd = [sys.executable, "-P", "-m", "factoryctl"]
    for cmd in (help_cmd, typer_cmd):
        timed(cmd)  # warm the page cache and write the bytecode cache
    if nodes_cmd and subprocess.run(nodes_cmd, stdout=subprocess.DEVNULL, env=BASE_ENV, check=False).returncode:
        sys.exit(f"{' '.join(nodes_cmd)} failed: fix the fleet before timing it")
    helps, typers, completes, nodes = [], [], [], []
    for _ in range(args.runs):
        helps.append(timed(help_cmd))
        typers.append(timed(typer_cmd))
        completes.append(timed(complete_cmd, complete_env))
        if nodes_cmd:
            nodes.append(timed(nodes_cmd))
    result = {
        "runs": args.runs,
        "help_median_ms": round(statistics.median(helps) * 1000, 1),
        "import_typer_median_ms": round(statistics.median(typers) * 1000, 1),
        "completion_median_ms": round(statistics.median(completes) * 1000, 1),
        "help_ratio": round(statistics.median(helps) / statistics.median(typers), 2),
        "completion_ratio": round(statistics.median(completes) / statistics.median(typers), 2),
        "heavy_modules_after_help": heavy_modules(
            "from factoryctl.cli.app import run\ntry:\n    run(['--help'])\nexcept SystemExit:\n    pass"
        ),
    }
    if nodes:
        result["nodes_median_ms"] = round(statistics.median(nodes) * 1000, 1)
        result["nodes_ratio"] = round(statistics.median(nodes) / statistics.median(typers), 2)
    if args.tab_config:
        result.update(tab_times(args.tab_config, args.runs))
    result["factoryctl"] = subprocess.run(
        [sys.executable, "-P", "-c", "import factoryctl; print(factoryctl.__file__)"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
