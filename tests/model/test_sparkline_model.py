"""The pure sparkline model: its ramps and the two bucketings the CLI's trend and the dashboard's graphs use."""

from __future__ import annotations

import pytest

from factoryctl.model.sparkline import ASCII_RAMP, BLOCKS, UNICODE_RAMP, column_maxima, ramp_line, sample_means


def test_the_ramps_have_eight_visible_steps_and_blocks_add_a_blank_below() -> None:
    assert BLOCKS == " ▁▂▃▄▅▆▇█"
    assert BLOCKS[1:] == UNICODE_RAMP
    assert len(ASCII_RAMP) == len(UNICODE_RAMP) == 8
    assert ASCII_RAMP.isascii()
    assert " " not in ASCII_RAMP


def test_column_maxima_right_aligns_a_short_series_with_gaps_before_it() -> None:
    assert column_maxima([1.0, None, 2.0], 5) == [None, None, 1.0, None, 2.0]
    assert column_maxima([1.0], 0) == []
    assert column_maxima([1.0], -3) == []


def test_column_maxima_fills_exactly_the_width_and_keeps_a_one_sample_spike() -> None:
    values: list[float | None] = [0.0] * 100
    values[37] = 9.0
    columns = column_maxima(values, 7)
    assert len(columns) == 7
    assert columns.count(9.0) == 1
    assert column_maxima([1, 5, 2, 2, 7, 3], 3) == [5, 2, 7]


def test_column_maxima_is_a_gap_only_where_a_column_has_no_value() -> None:
    assert column_maxima([None, None, 4.0, None, None, None], 3) == [None, 4.0, None]


def test_sample_means_chunk_by_samples_not_by_values() -> None:
    # one rolled-up minute of 60 samples at 100 W, then 60 raw seconds at 500 W: half the line each
    means = sample_means([100.0] + [500.0] * 60, 4, [60] + [1] * 60)
    assert means == [100.0, 500.0, 500.0]
    assert sample_means([1.0, 3.0, 5.0, 7.0], 2) == [2.0, 6.0]


def test_sample_means_keep_each_value_when_there_are_fewer_than_the_width() -> None:
    assert sample_means([4.0, 1.0, 2.0], 24) == [4.0, 1.0, 2.0]
    assert sample_means([], 24) == []


def test_sample_means_close_a_chunk_at_its_share_so_a_trailing_rest_is_its_own_mean() -> None:
    # 30 samples over 24: a share is 1.25 samples, so chunks of 2 and no partial chunk is merged into the next
    assert sample_means([float(v) for v in range(30)], 24) == [v + 0.5 for v in range(0, 30, 2)]
    assert sample_means([1.0, 2.0, 3.0], 2) == [1.5, 3.0]


def test_sample_means_refuse_weights_that_do_not_match_the_values() -> None:
    with pytest.raises(ValueError):
        sample_means([1.0, 2.0], 4, [1])


@pytest.mark.parametrize(("ascii_only", "ramp"), [(False, UNICODE_RAMP), (True, ASCII_RAMP)])
def test_ramp_line_scales_from_the_lowest_to_the_highest_step(ascii_only: bool, ramp: str) -> None:
    assert ramp_line([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], ascii_only) == ramp
    assert ramp_line([10.0, 20.0], ascii_only) == ramp[0] + ramp[-1]
    assert ramp_line([5.0, 5.0, 5.0], ascii_only) == ramp[0] * 3


def test_ramp_line_of_nothing_is_empty() -> None:
    assert ramp_line([]) == ""
