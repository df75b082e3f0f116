"""`price show` in the hour a local-time prices file skips in spring says so (session 25, "clocksteps").

A file written in Paris local time without offsets has no 02:00 on 2026-03-29 (the clocks went forward). `price show
--at 2026-03-29T02:30` said `the feed missed these intervals; fill them in the file`: an hour that never was. The
autumn repeat of such a file is refused with a daylight-saving hint; the spring gap now gets one too, by the same
rule (no offset, an hour or less, at night). A gap in a file written in UTC, or in the day, keeps the feed hint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

HEADER = "timestamp_utc,price_per_mwh\n"


def show_at(cli: Callable[..., Any], tmp_path: Path, stamps: list[str], at: str) -> str:
    """The stderr of `price show --at AT` over a file of hourly rows at `stamps`."""
    path = tmp_path / "p.csv"
    path.write_text(HEADER + "".join(f"{stamp},{50 + n}\n" for n, stamp in enumerate(stamps)))
    result = cli("price", "show", "--prices", str(path), "--at", at, "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["stale"] is True
    return str(result.stderr)


def test_the_hour_a_local_time_file_skips_in_spring_gets_the_daylight_saving_hint(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    paris = ["2026-03-29T00:00", "2026-03-29T01:00", "2026-03-29T03:00", "2026-03-29T04:00", "2026-03-29T05:00"]
    said = show_at(cli, tmp_path, paris, "2026-03-29T02:30")
    assert "the file has a gap from 2026-03-29T02:00:00Z to 2026-03-29T03:00:00Z" in said
    assert "the feed missed" not in said
    assert (
        "hint: the file's times have no offset and this gap is an hour at night: it looks like a file written in"
        in said
    )
    assert "as the clocks went forward" in said


def test_other_gaps_keep_the_feed_hint(cli: Callable[..., Any], tmp_path: Path) -> None:
    utc = ["2026-03-29T00:00Z", "2026-03-29T01:00Z", "2026-03-29T03:00Z", "2026-03-29T04:00Z"]
    day = ["2026-03-29T10:00", "2026-03-29T11:00", "2026-03-29T13:00", "2026-03-29T14:00"]
    long = ["2026-03-29T00:00", "2026-03-29T01:00", "2026-03-29T04:00", "2026-03-29T05:00"]
    for stamps, at in ((utc, "2026-03-29T02:30Z"), (day, "2026-03-29T12:30"), (long, "2026-03-29T02:30")):
        said = show_at(cli, tmp_path, stamps, at)
        assert "hint: the feed missed these intervals; fill them in the file" in said, stamps
