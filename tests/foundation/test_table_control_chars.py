r"""A table cell's control characters are shown escaped, so no text from a file or a node breaks a listing.

A job id with a newline (allowed in a quoted CSV field) split `sched explain`'s row in two, and an ESC sequence in
any cell reached the terminal raw. Every listing goes through `render_table`, which escapes them (`\x0a`, `\x1b`);
JSON and CSV keep the text as it is. (`power simulate`'s own table: tests/power/test_review11_power.py.)
"""

from __future__ import annotations

from factoryctl.cli.render import Column, render_table

TRACE = 'job_id,submit_time_s,duration_s,num_gpus\n"a\nb",0,100,1\n"c\x1b[2Jd\te\rf",0,100,1\n'


def test_render_table_escapes_control_characters_and_aligns_on_the_escaped_text():
    items = [{"id": "a\nb", "state": "ok"}, {"id": "c\x1b[2J\t\r", "state": "ok"}]
    table = render_table(items, [Column("id", "ID"), Column("state", "STATE")], wide=False, header=True)
    assert table == ("ID                 STATE\na\\x0ab             ok\nc\\x1b[2J\\x09\\x0d   ok\n")


def test_sched_explain_keeps_one_row_per_job_whatever_its_id_holds(cli, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text(TRACE, newline="")
    args = ("sched", "explain", "--trace", str(trace), "--nodes", "1", "--gpus-per-node", "1", "--at", "50")
    table = cli(*args)
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("a\\x0ab ")
    assert lines[2].startswith("c\\x1b[2Jd\\x09e\\x0df ")
    assert "\x1b" not in table.stdout
    document = cli(*args, "-o", "json")
    assert [item["id"] for item in document.json()["items"]] == ["a\nb", "c\x1b[2Jd\te\rf"]
