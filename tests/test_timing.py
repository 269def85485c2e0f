import time

import pytest

from course_lib.timing import median_time, paired_times


def test_median_time_measures_a_known_duration():
    seconds = median_time(lambda: time.sleep(0.02), repeats=5, warmup=0)
    assert 0.019 < seconds < 0.06


def test_median_time_ignores_one_slow_run_and_counts_warmup():
    calls = []

    def work():
        calls.append(None)
        time.sleep(0.05 if len(calls) == 3 else 0.002)

    seconds = median_time(work, repeats=5, warmup=2)
    assert len(calls) == 7
    assert seconds < 0.02


def test_median_time_rejects_bad_arguments():
    with pytest.raises(ValueError, match="repeats"):
        median_time(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        median_time(lambda: None, warmup=-1)


def test_paired_times_alternates_the_two_and_reports_each_median_and_the_median_ratio():
    calls = []
    durations = {"a": [0.002, 0.004, 0.002, 0.030], "b": [0.006, 0.012, 0.006, 0.090]}

    def timed(name):
        def run():
            calls.append(name)
            time.sleep(durations[name][sum(c == name for c in calls) - 1])
        return run

    result = paired_times(timed("a"), timed("b"), repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert set(result) == {"a", "b", "ratio"}
    # The pairs are (4, 12), (2, 6), (30, 90) ms: each ratio is 3, whatever the load did to the pair.
    assert 0.0035 < result["a"] < 0.015 and 0.0115 < result["b"] < 0.03
    assert 2.0 < result["ratio"] < 3.6


def test_paired_times_ratio_is_robust_to_a_burst_that_hits_one_side():
    # A median of ratios: one pair slowed on one side only does not move it.
    burst = iter([False, False, True, False, False])

    def slow_sometimes():
        time.sleep(0.05 if next(burst) else 0.004)

    result = paired_times(lambda: time.sleep(0.002), slow_sometimes, repeats=5, warmup=0)
    assert 1.2 < result["ratio"] < 3.5


def test_paired_times_rejects_bad_arguments():
    with pytest.raises(ValueError, match="repeats must be a positive int, got 0"):
        paired_times(lambda: None, lambda: None, repeats=0)
    with pytest.raises(ValueError, match="warmup must be a non-negative int, got -1"):
        paired_times(lambda: None, lambda: None, warmup=-1)
