import time

import pytest

from course_lib.timing import median_time


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
