"""`factoryctl audit` over a big audit log: this checkout against an older one, side by side.

Session 20 made `audit` and `events` read and print a listing page by page (`Store.newest_window`/`audit_pages`,
`render.emit_listing_pages`, YAML through libyaml). This builds a store of `--rows` audit entries through the
project's own `Store.add_audit` (80 nodes x 8 GPUs over the last 6 days), then runs

    factoryctl -c F.yaml -q audit all --since 3650d --limit 10000000 -o FORMAT

for json, csv, yaml and table, and `-o yaml` again for `h[001-079]`: the reasons of h080 hold a double quote, which
makes head write a YAML page a second time through PyYAML's own emitter (`yaml_output.yaml_text`), and every page of
`all` holds some of them. Each case runs as a fresh process per side, base and head alternating (base, head, base,
head, ...) after one small warm-up each. The bench reads the child's stdout from a pipe: wall time, time to its first byte,
peak RSS and CPU of the child (`os.wait4`), and the sha256 of what it printed, which must be the same on both sides.

    git -C /work/main archive BASE | tar -x -C /tmp/scratch/NAME/base
    python benchmarks/bench_audit.py --base /tmp/scratch/NAME/base --scratch /tmp/scratch/NAME [--rows N | --quick]

`--base` (and `--head`, default this checkout) is a directory holding a `factoryctl` package. Children run with
`python -P` from the scratch directory, so the current directory never shadows PYTHONPATH, and with their bytecode
cached under the scratch directory (`PYTHONPYCACHEPREFIX`), the same for both sides. The store is kept in the scratch
directory and reused while it holds the same number of rows.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NODES = [f"h{i:03d}" for i in range(1, 81)]
QUOTED = "h080"  # its reasons have a double quote: every 1,000-row page of `audit all` holds a few
#: (label, target, -o): `all` for each form, and YAML again without the node whose reasons hold a double quote
CASES = [
    *((output, "all", output) for output in ("json", "csv", "yaml", "table")),
    ("yaml h[001-079] (no double quote)", "h[001-079]", "yaml"),
]
CONFIG = """name: benchaudit
state_dir: {state_dir}
nodes:
  h[001-080]: {{transport: local, sim: {{profile: h100-sxm, gpus: 8, seed: 7}}}}
"""


@dataclass(frozen=True)
class Run:
    wall_s: float
    first_byte_s: float
    cpu_s: float
    rss_mb: float
    size: int
    sha256: str
    status: int


def reason(node: str, k: int) -> str:
    """A `--reason`; QUOTED's has a double quote, which sends a YAML page through PyYAML's own emitter."""
    if node == QUOTED:
        return f'grid peak: ticket OPS-{k // 640}, "night cap"'
    return f"grid peak: ticket OPS-{k // 640}, night cap"


def build_store(head: Path, state_dir: Path, rows: int) -> None:
    """`rows` audit entries through the head checkout's `Store.add_audit`, 10,000 per transaction."""
    store_path = state_dir / "factory.db"
    if store_path.exists():
        with sqlite3.connect(f"file:{store_path}?mode=ro", uri=True) as db:
            if db.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == rows:
                return
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True)
    sys.path.insert(0, str(head))
    from factoryctl.store.rows import AuditEntry
    from factoryctl.store.sqlite import open_store

    store = open_store(store_path)
    began, now, span = time.perf_counter(), time.time(), 6 * 86400
    batch: list[AuditEntry] = []
    for k in range(rows):
        reset, node = k % 50 == 49, NODES[(k // 8) % len(NODES)]
        batch.append(
            AuditEntry(
                time=now - span + k * (span / rows),
                node=node,
                gpu=k % 8,
                action="reset" if reset else "set",
                before_w=700.0 if k % 3 else 450.0,
                after_w=700.0 if reset else (450.0 if k % 2 else 300.0),
                clamped=k % 97 == 0,
                user="root" if k % 5 else "ops-bot",
                reason=None if reset else reason(node, k),
                requested_w=None if reset else (450.0 if k % 2 else 250.0),
            )
        )
        if len(batch) == 10_000:
            store.add_audit(batch)
            batch = []
    if batch:
        store.add_audit(batch)
    store.close()
    print(f"built {rows:,} audit rows in {time.perf_counter() - began:.1f} s: {store_path}", flush=True)


def child_env(package_dir: Path, scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(package_dir), "PYTHONPYCACHEPREFIX": str(scratch / "pycache")}


def package_of(package_dir: Path, scratch: Path) -> str:
    """Where a child with `package_dir` first on its path finds `factoryctl`."""
    argv = [sys.executable, "-P", "-c", "import factoryctl; print(factoryctl.__file__)"]
    env = child_env(package_dir, scratch)
    return subprocess.run(argv, env=env, cwd=scratch, capture_output=True, text=True, check=True).stdout.strip()


def run(package_dir: Path, scratch: Path, config: Path, args: list[str]) -> Run:
    """One `factoryctl -c CONFIG -q audit ARGS` with `package_dir` first, its stdout read here in 64 KiB pieces."""
    argv = [sys.executable, "-P", "-m", "factoryctl", "-c", str(config), "-q", "audit", *args]
    digest, size, first = hashlib.sha256(), 0, 0.0
    with tempfile.TemporaryFile() as errors:
        began = time.perf_counter()
        child = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=errors, env=child_env(package_dir, scratch), cwd=scratch
        )
        assert child.stdout is not None
        fd = child.stdout.fileno()
        while chunk := os.read(fd, 1 << 16):
            if not size:
                first = time.perf_counter() - began
            size += len(chunk)
            digest.update(chunk)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(status)
        child.stdout.close()
        if child.returncode:
            errors.seek(0)
            sys.stderr.write(errors.read().decode(errors="replace")[-2000:])
    return Run(
        wall_s=wall,
        first_byte_s=first,
        cpu_s=usage.ru_utime + usage.ru_stime,
        rss_mb=usage.ru_maxrss / 1024,
        size=size,
        sha256=digest.hexdigest(),
        status=child.returncode,
    )


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base", required=True, type=Path, help="directory holding the base factoryctl package")
    parser.add_argument("--head", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "bench_audit")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    parser.add_argument("--runs", type=int, default=2, help="runs per side and format (alternating)")
    args = parser.parse_args()
    rows = 20_000 if args.quick else args.rows
    base, head, scratch = args.base.resolve(), args.head.resolve(), args.scratch.resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    state_dir = scratch / f"audit-{rows}"
    build_store(head, state_dir, rows)
    config = scratch / f"factory-{rows}.yaml"
    config.write_text(CONFIG.format(state_dir=state_dir))
    where = {side: package_of(path, scratch) for side, path in (("base", base), ("head", head))}
    if where["base"] == where["head"]:
        sys.exit(f"base and head both import {where['base']}")
    print(f"rows {rows:,}; base {where['base']}; head {where['head']}; load average {load()}", flush=True)
    sides = (("base", base), ("head", head))
    for _, path in sides:  # warm-up: bytecode, the store in the page cache
        run(path, scratch, config, ["all", "--since", "3650d", "--limit", "10", "-o", "csv"])
    print(
        "| case (-o) | bytes | same sha256 | exit base / head | wall base / head (median) | head / base"
        " | first byte base / head | CPU base / head | head / base | peak RSS base / head | head / base |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, target, output in CASES:
        listing = [target, "--since", "3650d", "--limit", "10000000", "-o", output]
        found: dict[str, list[Run]] = {"base": [], "head": []}
        for _ in range(args.runs):
            for side, path in sides:
                found[side].append(run(path, scratch, config, listing))
        wall = {s: statistics.median(r.wall_s for r in found[s]) for s in found}
        first = {s: statistics.median(r.first_byte_s for r in found[s]) for s in found}
        cpu = {s: statistics.median(r.cpu_s for r in found[s]) for s in found}
        rss = {s: max(r.rss_mb for r in found[s]) for s in found}
        same = len({r.sha256 for rs in found.values() for r in rs}) == 1
        sizes = sorted({r.size for rs in found.values() for r in rs})
        codes = {s: max(r.status for r in found[s]) for s in found}
        print(
            f"| {label} | {'/'.join(f'{n:,}' for n in sizes)} | {'yes' if same else '**NO**'}"
            f" | {codes['base']} / {codes['head']}"
            f" | {wall['base']:.2f} / {wall['head']:.2f} s | {wall['head'] / wall['base']:.2f}"
            f" | {first['base']:.2f} / {first['head']:.2f} s"
            f" | {cpu['base']:.2f} / {cpu['head']:.2f} s | {cpu['head'] / cpu['base']:.2f}"
            f" | {rss['base']:.0f} / {rss['head']:.0f} MB | {rss['head'] / rss['base']:.2f} |",
            flush=True,
        )
    print(f"load average at the end {load()}")


if __name__ == "__main__":
    main()
