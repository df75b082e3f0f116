"""Messages a black-box review (session 11) found misleading: -q notes, compressed files, rounded values.

`-q` drops notes (`config locate`'s `from ... (exists)`, `config validate`'s note) but keeps warnings; a gzip, zstd,
xz or bzip2 file is said to be compressed, with how to pipe it in, instead of "not UTF-8 (byte 0x8b)"; a value out
of range is echoed exactly (`1000001`, never `1e+06`), and sched explain's hints give times that can be pasted
back into --at.
"""

from __future__ import annotations

import bz2
import gzip
import lzma

import pytest

from factoryctl.errors import UsageError
from factoryctl.textfile import decode_utf8

TRACE_HEADER = "job_id,submit_time_s,duration_s,num_gpus\n"


def test_quiet_config_locate_prints_the_path_and_nothing_on_stderr(cli, tmp_path):
    path = tmp_path / "factory.yaml"
    path.write_text("nodes: {a: {}}\n")
    result = cli("-q", "--config", str(path), "config", "locate")
    assert (result.exit_code, result.stdout, result.stderr) == (0, f"{path}\n", "")


def test_quiet_config_validate_drops_its_note_but_keeps_its_warnings(cli, tmp_path):
    path = tmp_path / "factory.yaml"
    path.write_text("nodes: {}\npower:\n  policy: /etc/factoryctl/policy.yaml\n")
    loud = cli("--config", str(path), "config", "validate")
    assert "note: power.policy" in loud.stderr
    quiet = cli("-q", "--config", str(path), "config", "validate")
    assert quiet.exit_code == 0, quiet.stderr
    assert "note:" not in quiet.stderr
    assert "warning:" in quiet.stderr  # no nodes: a warning stays


TEXT = TRACE_HEADER.encode() + b"a,0,5,1\n"


def _zipped(data: bytes) -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("trace.csv", data)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "name", "tool", "pipe_tool"),
    [
        (gzip.compress(TEXT), "gzip", "zcat", "zcat"),
        (b"\x28\xb5\x2f\xfd" + b"\x00" * 16, "zstd", "zstdcat", "zstdcat"),
        (lzma.compress(TEXT), "xz", "xzcat", "xzcat"),
        (bz2.compress(TEXT), "bzip2", "bzcat", "bzcat"),
        (_zipped(TEXT), "zip", "unzip -p", "funzip"),  # unzip needs a file it can seek in; funzip reads a pipe
    ],
    ids=("gzip", "zstd", "xz", "bzip2", "zip"),  # the data holds the time it was made: ids the same in every worker
)
def test_a_compressed_file_is_said_to_be_one_with_how_to_pipe_it_in(data, name, tool, pipe_tool):
    with pytest.raises(UsageError) as refused:
        decode_utf8(data, "t.csv.x", "trace")
    assert refused.value.message == f"t.csv.x: the trace looks {name}-compressed, not UTF-8 text."
    assert refused.value.hint == (
        f"decompress it and pipe it in with --trace -, e.g. `{tool} t.csv.x | factoryctl sched simulate --trace - ...`."
    )
    with pytest.raises(UsageError) as prices:
        decode_utf8(data, "stdin", "prices file")
    assert prices.value.hint == (  # came through stdin: no file of its own to name
        f"decompress it in the pipe, before factoryctl reads it: `... | {pipe_tool} | factoryctl power simulate"
        " --prices - ...`."
    )
    with pytest.raises(UsageError) as curve:
        decode_utf8(data, "c.csv.gz", "curve file")
    assert curve.value.hint == f"decompress it first (`{tool} c.csv.gz > c.csv`) and give that file."


def test_text_that_merely_starts_like_bzip2_is_text():
    assert decode_utf8(b"BZh9 is a name\n", "x.csv", "trace") == "BZh9 is a name\n"


def test_sched_simulate_names_a_gzipped_trace(cli, tmp_path):
    trace = tmp_path / "t.csv.gz"
    trace.write_bytes(gzip.compress(TEXT))
    result = cli("sched", "simulate", "--trace", str(trace), "--nodes", "24")
    assert result.exit_code == 2
    assert result.stderr == (
        f"factoryctl: {trace}: the trace looks gzip-compressed, not UTF-8 text.\n"
        f"hint: decompress it and pipe it in with --trace -, e.g. `zcat {trace} | factoryctl sched simulate --trace -"
        " ...`.\n"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1000001.0, "1000001"), (-1000001.0, "-1000001"), (2.0000001, "2.0000001"), (0.1, "0.1"), (1e20, "1e+20")],
)
def test_exact_number_never_rounds(value, shown):
    from factoryctl.textfile import exact_number

    assert exact_number(value) == shown
    assert float(exact_number(value)) == value


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a,0,100,1000001", "num_gpus is 1000001, more than the 1,000,000 a trace may give"),
        ("a,-1000001,100,1", "submit_time_s is -1000001 but must not be negative"),
        ("a,0,100,1.0000001", "num_gpus must be a whole number of at least 1, not 1.0000001"),
        ("a,0,100,1,,,,-1234567", "walltime_s is -1234567 but must be positive"),
        (
            "a,0,100,1,,,1.0000000000000002,",
            "priority must be an integer from -1,000,000 to 1,000,000, not 1.0000000000000002",
        ),
    ],
)
def test_a_trace_value_out_of_range_is_echoed_exactly(row, message):
    from factoryctl.scheduler.trace import parse_trace

    header = "job_id,submit_time_s,duration_s,num_gpus,num_nodes,gpus_per_node,priority,walltime_s\n"
    with pytest.raises(UsageError) as refused:
        parse_trace([header, row + "\n"], source="t.csv")
    assert refused.value.message.startswith(f"t.csv:2: {message}")


def test_sched_explains_ended_hint_can_be_pasted_back_into_at(cli, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text(TRACE_HEADER + "a,6087880,100,1\nb,1234567.25,10.5,1\n")
    base = ("sched", "explain", "--trace", str(trace), "--nodes", "1")
    late = cli(*base, "--at", "1e11")
    assert late.exit_code == 0, late.stderr
    assert late.stderr == (
        "factoryctl: every job submitted by 100000000000 s has ended.\nhint: the last one ended at 6087980 s.\n"
    )
    early = cli(*base, "--at", "5")
    assert "hint: the first one arrives at 1234567.25 s." in early.stderr
    pasted = cli(*base, "--at", "6087980", "-o", "json")
    assert pasted.json()["items"] == []


def test_a_zipped_trace_file_is_said_to_be_one_through_the_cli(cli, tmp_path):
    """A zip archive read from its file (in chunks): named as zip, not as a file holding a NUL byte."""
    trace = tmp_path / "t.zip"
    trace.write_bytes(_zipped(TEXT))
    result = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1")
    assert result.exit_code == 2, result.stderr
    assert f"{trace}: the trace looks zip-compressed, not UTF-8 text." in result.stderr
    assert "unzip -p" in result.stderr
