"""Reading an agent's output into lines (transport/agent_lines.LineSplitter) against the floor: one split of it all.

The splitter sees the output as the channel delivers it, in 64 KiB chunks; the baseline joins every chunk first and
splits once, which is what the reading cannot do better than. Before the splitter, the reader re-joined and
re-searched the unfinished line per chunk: quadratic in a line's length (a 64 MiB line: 35 s of CPU).

    python benchmarks/bench_agent_lines.py [--repeat 5]

Prints JSON: CPU seconds (best of --repeat) for (a) one 16 MiB line, the largest an agent may send, and (b) 2,000
sample lines of 30 KB (a 64-GPU node's sample), and (c) 64 MB of 200-byte lines, each with its ratio to the
baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from factoryctl.transport.agent_lines import MAX_LINE_BYTES, LineSplitter

CHUNK = 1 << 16


def chunks_of(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def with_splitter(chunks: list[bytes]) -> int:
    splitter = LineSplitter(MAX_LINE_BYTES)
    return sum(len(splitter.feed(chunk)) for chunk in chunks)


def baseline(chunks: list[bytes]) -> int:
    return len(b"".join(chunks).split(b"\n")) - 1


def best_cpu(run: Callable[[list[bytes]], int], chunks: list[bytes], repeat: int) -> tuple[float, int]:
    best, lines = float("inf"), 0
    for _ in range(repeat):
        started = time.process_time()
        lines = run(chunks)
        best = min(best, time.process_time() - started)
    return best, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    cases = {
        "one 16 MiB line": b"x" * (MAX_LINE_BYTES - 1) + b"\n",
        "2,000 lines of 30 KB": (b"y" * 30_000 + b"\n") * 2_000,
        "320,000 lines of 200 bytes": (b"z" * 199 + b"\n") * 320_000,
    }
    report = {}
    for name, data in cases.items():
        chunks = chunks_of(data)
        ours, lines = best_cpu(with_splitter, chunks, repeat)
        floor, expected = best_cpu(baseline, chunks, repeat)
        assert lines == expected, (name, lines, expected)
        report[name] = {"splitter_s": round(ours, 4), "baseline_s": round(floor, 4), "ratio": round(ours / floor, 2)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
