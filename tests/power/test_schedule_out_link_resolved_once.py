"""`--schedule-out` through a symbolic link: the link is resolved once, when the file is opened (cli/outfile.py).

The rename at the end went to the link's target as resolved then, so a link re-pointed during a long replay sent the
schedule over another file. (Kept here with the other hardening tests of this round; it belongs with
tests/power/test_schedule_out_file_rules.py.)
"""

from __future__ import annotations

from pathlib import Path

from factoryctl.cli.outfile import open_out_file


def test_a_link_re_pointed_during_the_run_does_not_move_the_output(tmp_path: Path) -> None:
    chosen = tmp_path / "chosen.csv"
    chosen.write_text("old schedule\n")
    precious = tmp_path / "precious"
    precious.write_text("keep me\n")
    link = tmp_path / "out.csv"
    link.symlink_to(chosen)
    out = open_out_file(link, "--schedule-out", "the schedule to out.csv", [])
    assert out.handle is not None
    link.unlink()
    link.symlink_to(precious)  # re-pointed while the replay runs
    with out.handle:
        out.handle.write("new schedule\n")
    out.commit()
    assert chosen.read_text() == "new schedule\n"
    assert precious.read_text() == "keep me\n"
    assert link.is_symlink()
