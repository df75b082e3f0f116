"""The notes on a trace (ignored columns, skipped jobs): the file's text escaped, unnamed columns named.

A header is the user's file: an ESC sequence in a column name must reach the terminal as `\\x1b`, as job ids do in
errors. A header ending in a comma has a column with no name, whose values the replay drops like any other
ignored column's, so the note names it too. And `--preemption`'s help must not suggest the replay reads factory.yaml.
"""

from __future__ import annotations

HEADER = "job_id,submit_time_s,duration_s,num_gpus"


def _note(cli, path) -> str:
    result = cli("sched", "simulate", "--trace", str(path), "--nodes", "1", "--policy", "fifo")
    assert result.exit_code == 0, result.stderr
    (note,) = [line for line in result.stderr.splitlines() if "ignoring column(s)" in line]
    return note


def test_control_characters_in_column_and_file_names_are_escaped(cli, tmp_path):
    trace = tmp_path / "t\x1b]0;x\x07.csv"
    trace.write_text(f"{HEADER},\x1b[2Jteam\na,0,10,4,x\n")
    note = _note(cli, trace)
    assert "\x1b" not in note
    assert "\x07" not in note
    assert "t\\x1b]0;x\\x07.csv: ignoring column(s) \\x1b[2Jteam: the replay does not model them" in note


def test_a_line_break_in_a_quoted_column_name_stays_on_the_notes_line(cli, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text(f'{HEADER},"te\nam"\na,0,10,4,x\n')
    assert "ignoring column(s) te\\x0aam: the replay" in _note(cli, trace)


def test_an_unnamed_column_is_named_by_its_position(cli, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text(f"\n{HEADER},,team,\na,0,10,4,x,y,z\n")
    assert "ignoring column(s) column 5 (no name), team, column 7 (no name): the replay" in _note(cli, trace)


def test_a_header_with_every_column_named_and_read_has_no_note(cli, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text(f"{HEADER}\na,0,10,4\n")
    result = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1", "--policy", "fifo")
    assert "ignoring" not in result.stderr


def test_preemption_help_says_the_replay_does_not_read_factory_yaml(cli):
    for command in ("simulate", "explain"):
        text = " ".join(cli("sched", command, "--help").stdout.split())
        assert "(what scheduler.preemption does in factory.yaml, which the replay never reads)" in text


def test_skipped_job_ids_are_escaped_in_the_warning_and_its_hint(cli, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text(f'{HEADER}\n"big\x1b[2J\nx",0,10,400\nsmall,0,10,4\n')
    result = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1", "--policy", "fifo")
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stderr
    assert "can never run on this cluster and were skipped: big\\x1b[2J\\x0ax\n" in result.stderr
    assert "hint: job big\\x1b[2J\\x0ax needs 50 nodes with 8 GPUs" in result.stderr
