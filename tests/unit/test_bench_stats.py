"""The benchmark's statistics helpers: percentiles that stay inside small samples, and the linear fit."""

import math

import pytest

from bench.measure import quantile, summary
from bench.sections import linear_fit


def test_percentiles_interpolate_between_closest_ranks() -> None:
    xs = [float(x) for x in range(12, 0, -1)]  # unsorted on purpose
    assert quantile(xs, 0.5) == pytest.approx(6.5)
    assert quantile(xs, 0.99) == pytest.approx(11.89)  # within the sample, not extrapolated past its maximum
    assert summary(xs) == {"p50": pytest.approx(6.5), "p99": pytest.approx(11.89), "n": 12}


def test_tiny_samples() -> None:
    assert summary([4.0]) == {"p50": 4.0, "p99": 4.0, "n": 1}
    empty = summary([])
    assert math.isnan(empty["p50"]) and math.isnan(empty["p99"]) and empty["n"] == 0


def test_linear_fit() -> None:
    fit = linear_fit([1.0, 3.0, 5.0, 10.0], [12.0, 16.0, 20.0, 30.0])
    assert fit == {"intercept": pytest.approx(10.0), "slope": pytest.approx(2.0), "r2": pytest.approx(1.0)}
    assert 0 < linear_fit([0.0, 1.0, 2.0], [0.0, 2.0, 1.0])["r2"] < 1
    assert linear_fit([1.0, 3.0], [7.0, 7.0]) == {"intercept": 7.0, "slope": 0.0, "r2": 1.0}
