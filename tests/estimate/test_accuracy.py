"""The estimator against the measured GPU rows (benchmarks/data, and own runs if any): the issue's targets.

Pure Python, fast: the same comparison benchmarks/estimator_accuracy.py prints,
held to median <= 10% and p90 <= 25% on held-out rows, and no out-of-memory
row predicted to fit.
"""

from . import scripts

accuracy = scripts.load("estimator_accuracy")


def test_held_out_error_meets_the_target_and_no_oom_row_is_said_to_fit():
    records = accuracy.compare(accuracy.load_rows())
    held = accuracy.summaries(records, "memory_error")["held_out"]["overall"]
    assert held["n"] >= 20
    assert held["median"] <= 0.10 and held["p90"] <= 0.25
    assert accuracy.oom_check(records)["predicted_to_fit"] == []


def test_trainable_counts_equal_the_measured_ones():
    for record in accuracy.compare(accuracy.load_rows()):
        if record["trainable_measured"] is not None:
            assert record["trainable_predicted"] == record["trainable_measured"], record


def test_the_printed_time_band_is_the_held_out_spread():
    import pytest

    from advisor.estimate.calibration import TIME_BAND

    low, high = accuracy.time_band(accuracy.compare(accuracy.load_rows()))
    assert TIME_BAND == pytest.approx((low, high), abs=0.002)
    assert low < 1 < high
