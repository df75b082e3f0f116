"""Model behaviour that mutation testing found unpinned: each test fails on a one-token change of the model."""

from __future__ import annotations

import string

import pytest

from factoryctl.errors import UsageError
from factoryctl.model.folding import fold_nodes
from factoryctl.model.jobs import JobSpec
from factoryctl.model.power import iso_utc_seconds
from factoryctl.model.sparkline import column_maxima


def test_the_years_at_the_ends_of_four_digits_are_written_as_iso_8601_reads_them():
    # Year 0 (1 BC) is a plain four-digit year; year 10,000 takes the expanded form with its sign.
    assert iso_utc_seconds(-62167219200) == "0000-01-01T00:00:00Z"
    assert iso_utc_seconds(-62167219201) == "-0001-12-31T23:59:59Z"
    assert iso_utc_seconds(253402300799) == "9999-12-31T23:59:59Z"
    assert iso_utc_seconds(253402300800) == "+10000-01-01T00:00:00Z"


def test_a_long_node_list_without_ranges_is_cut_without_a_stray_bracket():
    names = ["gpu" + a + b for a in "abc" for b in string.ascii_lowercase]
    assert fold_nodes(names) == ",".join(names[:33]) + ",..."  # gpuaa to gpubg: no bracket to close
    odd = fold_nodes([f"a{i}" for i in range(1, 200, 2)])
    assert odd == "a[" + ",".join(str(i) for i in range(1, 126, 2)) + ",...]"


def test_one_gpu_per_node_is_a_shape_a_job_may_ask_for():
    assert JobSpec(4, gpus_per_node=1).gpus_per_node == 1
    with pytest.raises(UsageError, match="gpus_per_node must be at least 1, not 0"):
        JobSpec(4, gpus_per_node=0)


def test_any_positive_walltime_is_a_walltime():
    assert JobSpec(1, walltime_s=1).walltime == 1
    assert JobSpec(1, walltime_s=0.5).walltime == 0.5
    with pytest.raises(UsageError, match="walltime_s must be positive, not 0"):
        JobSpec(1, walltime_s=0)


def test_a_one_column_trend_shows_the_highest_value():
    assert column_maxima([1.0, 5.0, None, 3.0], 1) == [5.0]
