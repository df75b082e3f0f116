"""ISO-8601 times are read as Python 3.11 reads them on 3.10 too (factoryctl.isotime).

On 3.10 `datetime.fromisoformat` read only what `isoformat()` writes, so price CSV times written `+0000`, `+00`,
`20230101T000000Z`, `,000` or `.5Z` and `--since 20261122` were refused. CI runs 3.11, so the 3.10 path is tested
here on every Python: the rewrite is called directly, must give text of the one form 3.10 reads, and must read as
the table says; the table itself is checked against the running Python's own reader (3.11's on CI). The callers
are also run with the rewrite forced on. Seen failing under 3.10 before the fix.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from factoryctl import isotime
from factoryctl.isotime import as_py310, fromisoformat

UTC = timezone.utc
# What 3.10's fromisoformat reads: what isoformat() writes (any one character between date and time).
PY310_FORM = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(.[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?([+-][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{6})?)?)?)?",
    re.DOTALL,
)


def _at(year: int, month: int, day: int, *clock: int, offset: timedelta | None = None) -> datetime:
    return datetime(year, month, day, *clock, tzinfo=None if offset is None else timezone(offset))


READ = [
    ("2026-11-22", _at(2026, 11, 22)),
    ("20261122", _at(2026, 11, 22)),
    ("2026-11-22T01", _at(2026, 11, 22, 1)),
    ("20261122T01", _at(2026, 11, 22, 1)),
    ("2026-11-22 01:00", _at(2026, 11, 22, 1)),
    ("2026-11-22T0100", _at(2026, 11, 22, 1)),
    ("20261122T000000Z", _at(2026, 11, 22, offset=timedelta(0))),
    ("2023-01-01T00:00:00+0000", _at(2023, 1, 1, offset=timedelta(0))),
    ("2023-01-01T00:00:00+00", _at(2023, 1, 1, offset=timedelta(0))),
    ("2023-01-01T00:00:00-00:00", _at(2023, 1, 1, offset=timedelta(0))),
    ("2023-01-01T05:30+0530", _at(2023, 1, 1, 5, 30, offset=timedelta(hours=5, minutes=30))),
    ("2023-01-01T05:30-053000", _at(2023, 1, 1, 5, 30, offset=-timedelta(hours=5, minutes=30))),
    ("2023-01-01T00:00:00+05:30:00.5", _at(2023, 1, 1, offset=timedelta(hours=5, minutes=30, seconds=0.5))),
    ("2023-01-01T00:00:00,000Z", _at(2023, 1, 1, offset=timedelta(0))),
    ("2026-11-22T01:00:00.5Z", _at(2026, 11, 22, 1, 0, 0, 500000, offset=timedelta(0))),
    ("2026-11-22T01:00:00.25", _at(2026, 11, 22, 1, 0, 0, 250000)),
    ("2026-11-22T01:00:00.123456789", _at(2026, 11, 22, 1, 0, 0, 123456)),
    ("2026-11-22T01:00:00.9999999", _at(2026, 11, 22, 1, 0, 0, 999999)),
    ("20230101T000000.25Z", _at(2023, 1, 1, 0, 0, 0, 250000, offset=timedelta(0))),
    ("2026-11-22T01:00:00.123+01:00", _at(2026, 11, 22, 1, 0, 0, 123000, offset=timedelta(hours=1))),
    ("2026-11-22T01:00:00.123456", _at(2026, 11, 22, 1, 0, 0, 123456)),
]

# (text, the start of the ValueError): refused by 3.11, so by the rewrite too, in Python's own words
REFUSED = [
    ("2026-13-01", "month must be in 1..12"),
    ("2026-02-30", "day is out of range for month"),
    ("2026-11-22T24:00", "hour must be in 0..23"),
    ("2026-11-22T01:60", "minute must be in 0..59"),
    ("2026-11-22T01:00+24:00", "offset must be a timedelta"),
    ("2026-11-22T", "Invalid isoformat string: '2026-11-22T'"),
    ("2026-11-22T1", "Invalid isoformat string: '2026-11-22T1'"),
    ("2026-1122", "Invalid isoformat string: '2026-1122'"),
    ("2026-11-22T01:0000", "Invalid isoformat string: '2026-11-22T01:0000'"),
    ("2026-11-22T0100:00", "Invalid isoformat string: '2026-11-22T0100:00'"),
    ("2026-11-22T01:00:00.", "Invalid isoformat string: '2026-11-22T01:00:00.'"),
    ("2026-11-22T01:00z", "Invalid isoformat string: '2026-11-22T01:00z'"),
    ("2026-11-22T01:00Z ", "Invalid isoformat string: '2026-11-22T01:00Z '"),
    ("2026-11-22T01Z+01:00", "Invalid isoformat string: '2026-11-22T01Z+01:00'"),  # 3.10's own reader took it
    ("2026-11-22T01:00+1", "Invalid isoformat string: '2026-11-22T01:00+1'"),
    ("2026-11-22T01:00+01:0", "Invalid isoformat string: '2026-11-22T01:00+01:0'"),
    ("+2026-11-22", "Invalid isoformat string: '+2026-11-22'"),
    ("2026112201", "Invalid isoformat string: '2026112201'"),
    ("٢٠٢٦-11-22", "Invalid isoformat string: '٢٠٢٦-11-22'"),
    ("yesterday", "Invalid isoformat string: 'yesterday'"),
]


@pytest.mark.parametrize(("text", "moment"), READ)
def test_the_rewrite_is_the_form_3_10_reads_and_means_what_3_11_reads(text: str, moment: datetime) -> None:
    written = as_py310(text)
    assert written is not None
    assert PY310_FORM.fullmatch(written), written
    assert (datetime.fromisoformat(written), datetime.fromisoformat(written).utcoffset()) == (
        moment,
        moment.utcoffset(),
    )
    # the table is the running Python's own reading (3.11's on CI), and the public reader gives it on every Python
    assert (fromisoformat(text), fromisoformat(text).utcoffset()) == (moment, moment.utcoffset())


@pytest.mark.parametrize(("text", "error"), REFUSED)
def test_what_3_11_refuses_the_rewrite_refuses_in_the_same_words(
    text: str, error: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError) as native:
        fromisoformat(text)
    monkeypatch.setattr(isotime, "_NATIVE", False)  # the path Python 3.10 takes
    with pytest.raises(ValueError) as rewritten:
        fromisoformat(text)
    assert str(native.value).startswith(error)
    assert str(rewritten.value) == str(native.value)


@pytest.mark.parametrize("native", [isotime._NATIVE, False], ids=["this-python", "the-3.10-rewrite"])
def test_price_times_and_since_read_the_documented_forms(native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from factoryctl.cli.telemetry import parse_when
    from factoryctl.power.csv_file import FieldError
    from factoryctl.power.sources import parse_timestamp

    monkeypatch.setattr(isotime, "_NATIVE", native)
    for stamp in ("2023-01-01T00:00:00+0000", "2023-01-01T00:00:00+00", "20230101T000000Z", "2023-01-01T00:00:00,000Z"):
        assert parse_timestamp(stamp) == 1672531200
    with pytest.raises(FieldError) as refused:
        parse_timestamp("2023-01-01T00:00:00.5Z")
    assert refused.value.args[0] == "timestamp_utc is '2023-01-01T00:00:00.5Z', which is not on a whole second"
    with pytest.raises(FieldError) as refused:
        parse_timestamp("2023-01-01T00:00Z+01:00")
    assert refused.value.args[0] == "timestamp_utc is '2023-01-01T00:00Z+01:00', which is not an ISO-8601 time"
    now = 1.8e9
    assert parse_when("20261122", now) == datetime(2026, 11, 22, tzinfo=UTC).timestamp()
    expected = datetime(2026, 11, 22, 1, tzinfo=UTC).timestamp()
    for text in ("20261122T01", "2026-11-22T01:00:00+0000", "2026-11-22T01:00+00", "20261122t010000z"):
        assert parse_when(text, now, "--at") == expected
    assert parse_when("2026-11-22T01:00:00.5Z", now, "--until") == expected + 0.5
