"""The drift tests and the binning, against values worked out by hand and against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from mlopsctl.monitor import stats
from mlopsctl.monitor.stats import (
    Binning,
    CategoryCounter,
    NumericCounter,
    category_histograms,
    fill_empty,
    psi,
    quantile_binning,
)

# --- PSI, by hand ----------------------------------------------------------------------------


def test_psi_of_two_bins_by_hand() -> None:
    # p = (0.5, 0.5), q = (0.25, 0.75):
    # (0.5 - 0.25) ln(0.5 / 0.25) + (0.5 - 0.75) ln(0.5 / 0.75)
    # = 0.25 * 0.693147 + 0.25 * 0.405465 = 0.274653
    value, drifted = psi([50, 50], [25, 75], threshold=0.2)
    assert value == pytest.approx(0.274653, abs=1e-6)
    assert drifted
    assert psi([50, 50], [25, 75], threshold=0.3) == (pytest.approx(0.274653, abs=1e-6), False)


def test_psi_of_identical_histograms_is_zero_and_counts_scale_out() -> None:
    assert psi([10, 20, 30], [10, 20, 30], 0.1) == (0.0, False)
    assert psi([10, 20, 30], [100, 200, 300], 0.1)[0] == pytest.approx(0.0, abs=1e-15)


def test_psi_of_four_deciles_by_hand() -> None:
    # reference uniform over 4 bins; current (0.1, 0.2, 0.3, 0.4)
    expected = (
        (0.25 - 0.1) * math.log(0.25 / 0.1)
        + (0.25 - 0.2) * math.log(0.25 / 0.2)
        + (0.25 - 0.3) * math.log(0.25 / 0.3)
        + (0.25 - 0.4) * math.log(0.25 / 0.4)
    )
    assert expected == pytest.approx(0.228218, abs=1e-6)  # 0.137444+0.011157+0.009116+0.070501
    assert psi([25, 25, 25, 25], [10, 20, 30, 40], 0.2)[0] == pytest.approx(expected, rel=1e-12)


def test_an_empty_bin_gets_the_documented_epsilon() -> None:
    # reference (1, 0): the smallest non-empty proportion (1) is above 1e-4, so the empty bin
    # gets 1e-4: (1 - 0.5) ln 2 + (1e-4 - 0.5) ln(1e-4 / 0.5) = 0.346574 + 4.257745 = 4.604319
    value, drifted = psi([100, 0], [50, 50], 0.2)
    assert value == pytest.approx(4.604319, abs=1e-6)
    assert drifted
    assert math.isfinite(psi([0, 10], [10, 0], 0.2)[0])


def test_the_epsilon_shrinks_below_the_smallest_proportion() -> None:
    # smallest non-empty proportion 1e-5 <= 1e-4: empty bins get 1e-5 / 1e6 = 1e-11
    filled = fill_empty(np.array([1e-5, 1 - 1e-5, 0.0]))
    assert filled[2] == pytest.approx(1e-11, rel=1e-12)
    assert fill_empty(np.array([0.5, 0.5, 0.0]))[2] == 1e-4


# --- KS and chi-square, against scipy --------------------------------------------------------


def test_ks_on_value_bins_equals_scipy_exactly() -> None:
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 8, 5000).astype(float)
    cur = rng.integers(1, 9, 3000).astype(float)
    binning = quantile_binning(ref, 10)
    assert binning.discrete
    value, drifted = stats.ks(binning.count(ref), binning.count(cur), 0.1)
    exact = sps.ks_2samp(ref, cur)
    assert value == pytest.approx(exact.statistic, abs=1e-12)
    assert drifted == (exact.statistic > 0.1)


def test_ks_on_the_quantile_grid_is_within_its_documented_bound() -> None:
    rng = np.random.default_rng(4)
    ref, cur = rng.normal(size=20_000), rng.normal(0.1, 1.2, size=15_000)
    grid = quantile_binning(ref, 100)
    r, c = grid.count(ref), grid.count(cur)
    value, _ = stats.ks(r, c, 0.1)
    exact = sps.ks_2samp(ref, cur).statistic
    bound = max((r / r.sum()).max(), (c / c.sum()).max())
    assert value <= exact + 1e-12
    assert exact - value <= bound
    assert stats.ks_pvalue(exact, ref.size, cur.size) == pytest.approx(
        sps.ks_2samp(ref, cur, method="asymp").pvalue, rel=1e-9
    )


def test_chisquare_equals_scipy_and_flags_a_new_category() -> None:
    ref, cur = np.array([500, 300, 200]), np.array([90, 70, 40])
    p_value, drifted = stats.chisquare(ref, cur, 0.05)
    expected = sps.chisquare(cur, ref * cur.sum() / ref.sum()).pvalue
    assert p_value == pytest.approx(expected, rel=1e-12)
    assert drifted == (expected < 0.05)
    assert stats.chisquare([10, 0], [10, 1], 0.05) == (0.0, True)


# --- binning ---------------------------------------------------------------------------------


def test_quantile_bins_hold_equal_reference_mass() -> None:
    values = np.arange(1, 1001, dtype=float)
    binning = quantile_binning(values, 10)
    assert not binning.discrete
    assert len(binning.edges) == 9
    assert binning.count(values).tolist() == [100] * 10
    # beyond the reference range: the end bins
    assert binning.assign(np.array([-1e9, 1e9])).tolist() == [0, 9]


def test_ties_merge_quantiles_and_bins_are_right_closed() -> None:
    values = np.concatenate([np.zeros(400), np.arange(1, 601, dtype=float)])
    binning = quantile_binning(values, 10)
    counts = binning.count(values)
    assert counts[0] == 400  # (-inf, 0] holds every zero
    assert counts.sum() == 1000


def test_few_distinct_values_are_binned_by_value_with_gaps() -> None:
    binning = quantile_binning(np.array([1.0, 1.0, 2.0, 5.0]), 10)
    assert binning == Binning((1.0, 2.0, 5.0), discrete=True)
    # bins: (<1) [1] (1..2) [2] (2..5) [5] (>5)
    got = binning.assign(np.array([0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 9.0])).tolist()
    assert got == [0, 1, 2, 3, 4, 5, 6]
    assert binning.labels() == ["< 1", "1", "1 .. 2", "2", "2 .. 5", "5", "> 5"]


def test_counters_accumulate_chunks_to_the_same_counts() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(size=10_000)
    values[::97] = np.nan
    values[5] = np.inf
    bins, grid = quantile_binning(values, 10), quantile_binning(values, 100)
    whole = NumericCounter(bins, grid)
    whole.update(values)
    chunked = NumericCounter(bins, grid)
    for part in np.array_split(values, 13):
        chunked.update(part)
    assert whole.counts.tolist() == chunked.counts.tolist()
    assert whole.grid_counts.tolist() == chunked.grid_counts.tolist()
    assert (chunked.rows, chunked.missing) == (10_000, 105)  # 104 NaN (every 97th) and one inf


def test_category_counter_pools_categories_past_its_limit() -> None:
    counter = CategoryCounter(max_categories=2)
    counter.update({"a": 3, "b": 2}, rows=6, missing=1)
    counter.update({"a": 1, "c": 4, "d": 1}, rows=6, missing=0)
    assert counter.counts == {"a": 4, "b": 2}
    assert counter.pooled == 5
    keys, ref, cur = category_histograms({"a": 10, "b": 5}, counter.counts, counter.pooled)
    assert keys == ["a", "b", "(other)"]
    assert ref.tolist() == [10, 5, 0]
    assert cur.tolist() == [4, 2, 5]


def test_the_registry_names_each_test_with_its_types_and_threshold() -> None:
    assert set(stats.TESTS) >= {"psi", "ks", "chisquare"}
    assert stats.get_test("psi").feature_types == {"numeric", "categorical"}
    assert stats.test_for("ks", "categorical").name == "chisquare"
    assert not stats.get_test("chisquare").drift_above
    with pytest.raises(KeyError, match="unknown drift test 'wasserstein'"):
        stats.get_test("wasserstein")


@pytest.mark.parametrize("discrete", [False, True])
def test_counting_sorted_values_equals_assigning_each_value(discrete: bool) -> None:
    rng = np.random.default_rng(6)
    values = rng.integers(0, 6, 3000).astype(float) if discrete else rng.normal(size=3000)
    binning = quantile_binning(values[:1000], 10)
    assert binning.discrete == discrete
    probe = np.concatenate([values, [-50.0, 50.0, 2.5]])  # beyond the range, and into a gap
    expected = np.bincount(binning.assign(probe), minlength=binning.n_bins)
    assert binning.count(probe).tolist() == expected.tolist()


def test_discrete_values_are_kept_exact() -> None:
    values = np.array([0.1 + 0.2, 0.7, 0.7, 1.0])  # 0.30000000000000004 must not become 0.3
    binning = quantile_binning(values, 10)
    assert binning.count(values).tolist() == [0, 1, 0, 2, 0, 1, 0]
