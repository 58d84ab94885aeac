"""`bench --dashboard`'s arithmetic on recorded samples (the browser part itself is a benchmark,
run by hand: no browser here): pauses between frames, the curve standing still behind the
store, its lag in points, the playground's frames per second and how often its charts show."""
from __future__ import annotations

import pytest

from dfkd_core.experiments.browser import (compare_table, frames_per_second, lag_seconds, lags, longest_gap, longest_stall, shown_at, table,
                                           visible_fraction)


def test_the_longest_gap_is_between_neighbours_in_time_order():
    assert longest_gap([0.0, 0.016, 0.9, 0.916, 0.5]) == pytest.approx(0.484)
    assert longest_gap([1.0]) == 0.0


def test_the_page_shows_what_it_last_changed_to():
    changes = [(1.0, 1), (2.0, 3)]
    assert [shown_at(changes, t) for t in (0.5, 1.0, 1.5, 2.5)] == [0, 1, 1, 3]


def test_a_stall_runs_from_the_first_store_sample_ahead_of_the_page_until_the_page_catches_up():
    changes = [(1.0, 1), (2.0, 2), (5.0, 4)]  # the page: 1 point at 1 s, 2 at 2 s, 4 at 5 s
    store = [(1.2, 1), (1.8, 2), (2.1, 2), (2.6, 3), (3.0, 4), (5.2, 4)]
    # behind at 1.8 (2 > 1) until 2.0: 0.2 s; behind from 2.6 (3 > 2) until 5.0, when it shows 4: 2.4 s
    assert longest_stall(changes, store, end=6.0) == pytest.approx(2.4)
    assert lags(changes, store) == [0, 1, 0, 1, 2, 0]
    # seconds until the page showed what each sample stored: 1.8 → 2.0; 2.6 and 3.0 → 5.0
    assert lag_seconds(changes, store, end=6.0) == pytest.approx([0.0, 0.2, 0.0, 2.4, 2.0, 0.0])


def test_a_curve_that_moves_every_half_second_while_it_trails_stalls_under_half_a_second():
    changes = [(0.0, 0), (0.5, 1), (1.0, 2)]
    store = [(0.1, 2), (0.6, 3), (1.1, 4)]
    assert longest_stall(changes, store, end=1.5) == pytest.approx(0.4)
    assert lags(changes, store) == [2, 2, 2]


def test_a_page_that_never_catches_up_stalls_until_the_end():
    assert longest_stall([(1.0, 1)], [(1.5, 1), (2.0, 2)], end=10.0) == pytest.approx(8.0)
    assert longest_stall([(1.0, 1)], [(1.5, 1)], end=10.0) == 0.0
    assert lag_seconds([(1.0, 1)], [(1.5, 1), (2.0, 2)], end=10.0) == pytest.approx([0.0, 8.0])


def test_frames_per_second_count_label_changes_and_visibility_counts_samples():
    # a new frame label every 250 ms (sampled every 50 ms), one sample with a chart missing
    samples = [(t * 50.0, f"direct — epoch {t // 5}", t != 7) for t in range(41)]
    assert frames_per_second(samples) == pytest.approx(4.0)
    assert visible_fraction(samples) == pytest.approx(40 / 41)
    assert frames_per_second(samples[:3]) == 0.0 and visible_fraction([]) == 0.0


def test_the_table_names_each_figure_with_its_target_and_leaves_out_what_was_not_measured():
    text = table({"first_point_median_s": 1.5, "stream_lag_points": [0, 2], "playground_fps": 4.2})
    lines = text.splitlines()
    assert len(lines) == 3
    assert "Start → first curve point" in lines[0] and "1.50" in lines[0] and "≤ 2 s" in lines[0]
    assert "0 / 2" in lines[1] and "≥ 4" in lines[2]


def test_two_checkouts_are_printed_side_by_side_with_a_dash_for_what_one_did_not_measure():
    text = compare_table({"first_point_median_s": 1.4, "stream_lag_s": [0.5, 1.8]},
                         {"first_point_median_s": 1.1, "stream_lag_s": [0.3, 0.7], "playground_fps": 9.0}, "/w/old", "/w/new")
    lines = text.splitlines()
    assert "(old)" in lines[1] and "(new)" in lines[1]
    assert "1.40" in lines[2] and "1.10" in lines[2]
    assert "0.5 / 1.8" in lines[3] and "0.3 / 0.7" in lines[3]
    assert "—" in lines[4] and "9.00" in lines[4]
