"""Drift tests as a registry of small functions over histograms, and the shared binning.

Every test compares two histograms over the same bins (reference counts, current counts) and
returns ``(value, drifted)``. Histograms rather than raw samples are what makes a check stream:
the reference is a profile (its bins and counts, written at training time) and the current batch
is counted chunk by chunk into the same bins (:class:`NumericCounter`, :class:`CategoryCounter`),
so memory does not grow with the batch.

Agreement with Evidently (``evidently.legacy.calculations.stattests``): given the same bins,
:func:`psi` is Evidently's formula with its rule for empty bins (:func:`fill_empty`), and
:func:`chisquare` is its chi-square p-value. What differs is the binning; see docs/monitoring.md.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: numeric features with at most this many distinct reference values are binned by value
#: (Evidently's cut-off between its two binnings is the same: ``nunique() > 20``)
MAX_DISCRETE_VALUES = 20
#: the proportion an empty bin gets when the smallest non-empty one is above it (Evidently's rule)
EMPTY_BIN_FLOOR = 1e-4
#: ... and otherwise the smallest non-empty proportion divided by this
EMPTY_BIN_DIVISOR = 1e6


# --- binning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binning:
    """Ordered bins over the real line, defined by sorted cut points.

    Continuous (``discrete=False``): ``len(edges) + 1`` right-closed bins ``(-inf, e0]``,
    ``(e0, e1]``, ..., ``(e_last, inf)``, so values outside the reference range fall into the end
    bins. Discrete (``discrete=True``, for features with few distinct values): the edges are the
    reference values and the bins alternate gap, value, gap, ...: ``(-inf, v0)``, ``[v0]``,
    ``(v0, v1)``, ``[v1]``, ..., ``(v_last, inf)``; ``2 * len(edges) + 1`` bins.
    """

    edges: tuple[float, ...]
    discrete: bool = False

    @property
    def n_bins(self) -> int:
        return 2 * len(self.edges) + 1 if self.discrete else len(self.edges) + 1

    def assign(self, values: FloatArray) -> IntArray:
        """The bin index of each (finite) value."""
        edges = np.asarray(self.edges, dtype=np.float64)
        index = np.searchsorted(edges, values, side="left")
        if not self.discrete:
            return index.astype(np.int64)
        if edges.size == 0:
            return np.zeros(values.shape, dtype=np.int64)
        hit = (index < edges.size) & (edges[np.minimum(index, edges.size - 1)] == values)
        return (2 * index + hit).astype(np.int64)

    def count(self, values: FloatArray) -> IntArray:
        """Histogram of *values* over these bins (values must be finite)."""
        return self.count_sorted(np.sort(values))

    def count_sorted(self, ordered: FloatArray) -> IntArray:
        """Histogram of already sorted finite values: two binary searches per edge, instead of
        one per value (sorting a chunk is several times faster than searching each value)."""
        edges = np.asarray(self.edges, dtype=np.float64)
        at_most = np.searchsorted(ordered, edges, side="right")
        if not self.discrete:
            return np.diff(np.concatenate([[0], at_most, [ordered.size]])).astype(np.int64)
        below = np.searchsorted(ordered, edges, side="left")
        # cumulative counts at each bin's right end: gap0 | [v0] | gap1 | [v1] | ... | last gap
        ends = np.empty(2 * edges.size + 1, dtype=np.int64)
        ends[0:-1:2] = below
        ends[1::2] = at_most
        ends[-1] = ordered.size
        return np.diff(np.concatenate([[0], ends])).astype(np.int64)

    def labels(self) -> list[str]:
        """A short human label per bin, for reports."""
        e = [_short(x) for x in self.edges]
        if self.discrete:
            out = [f"< {e[0]}"] if e else ["all"]
            for i, x in enumerate(e):
                out.append(x)
                out.append(f"{x} .. {e[i + 1]}" if i + 1 < len(e) else f"> {x}")
            return out
        if not e:
            return ["all"]
        return [f"<= {e[0]}"] + [f"{a} .. {b}" for a, b in itertools.pairwise(e)] + [f"> {e[-1]}"]

    def to_dict(self) -> dict[str, object]:
        return {"edges": list(self.edges), "discrete": self.discrete}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Binning:
        edges = data.get("edges", ())
        assert isinstance(edges, list | tuple)
        return cls(tuple(float(x) for x in edges), bool(data.get("discrete", False)))


def _short(x: float) -> str:
    if 1e4 <= abs(x) < 1e12:  # 52,340 reads better than 5.234e+04
        return f"{x:,.0f}"
    return f"{x:.4g}"


def round_sig(x: float, digits: int = 12) -> float:
    """*x* rounded to *digits* significant digits: reproducible across platforms and numpy
    versions that differ in the last bits of a quantile."""
    return float(f"{x:.{digits}g}")


def quantile_binning(values: FloatArray, n_bins: int) -> Binning:
    """Bins with (about) equal reference mass: cut points at the reference quantiles.

    With at most :data:`MAX_DISCRETE_VALUES` distinct values the bins are the values themselves;
    ties (e.g. a third of the values at 0) merge quantiles into one cut point, so a bin may hold
    more than ``1 / n_bins`` of the reference.
    """
    return quantile_binning_sorted(np.sort(values[np.isfinite(values)]), n_bins)


def quantile_binning_sorted(ordered: FloatArray, n_bins: int) -> Binning:
    """:func:`quantile_binning` of sorted finite values.

    Quantiles interpolate linearly (numpy's default method); cut points are rounded to 12
    significant digits (:func:`round_sig`). Discrete values are kept exact, as they must match
    the data.
    """
    if ordered.size == 0:
        return Binning((), discrete=True)
    starts = np.flatnonzero(np.diff(ordered)) + 1
    if starts.size < MAX_DISCRETE_VALUES:
        distinct = ordered[np.concatenate([[0], starts])]
        return Binning(tuple(float(v) for v in distinct), discrete=True)
    position = np.arange(1, n_bins) / n_bins * (ordered.size - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, ordered.size - 1)
    cuts = ordered[low] + (position - low) * (ordered[high] - ordered[low])
    return Binning(tuple(sorted({round_sig(float(c)) for c in cuts})))


def sturges_binning(reference: FloatArray, current: FloatArray) -> FloatArray:
    """Evidently's numeric PSI bins: equal width over both samples, Sturges' rule for the count.

    It needs the current batch to place the bins, so it cannot be precomputed into a profile;
    kept for comparisons with Evidently on the same binning. Returns ``np.histogram`` edges.
    """
    both = np.concatenate([reference, current])
    return np.histogram_bin_edges(both, bins="sturges")


# --- the tests --------------------------------------------------------------------------------


def fill_empty(proportions: FloatArray) -> FloatArray:
    """Give empty bins a small proportion so that ``log(p / q)`` is finite (Evidently's rule).

    An empty bin gets ``1e-4``, or, when the smallest non-empty proportion is itself at most
    ``1e-4``, that proportion divided by ``1e6``. The proportions are not renormalised.
    """
    nonzero = proportions[proportions > 0]
    if nonzero.size == 0:
        return proportions
    smallest = float(nonzero.min())
    fill = smallest / EMPTY_BIN_DIVISOR if smallest <= EMPTY_BIN_FLOOR else EMPTY_BIN_FLOOR
    return np.where(proportions > 0, proportions, fill)


def _proportions(counts: npt.ArrayLike) -> FloatArray:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    return c / total if total > 0 else c


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, threshold: float) -> tuple[float, bool]:
    """Population stability index of two histograms: ``sum((p - q) * ln(p / q))``."""
    p = fill_empty(_proportions(reference))
    q = fill_empty(_proportions(current))
    if p.size == 0 or not p.any() or not q.any():
        return float("nan"), False
    value = float(np.sum((p - q) * np.log(p / q)))
    return value, value > threshold


def ks(reference: npt.ArrayLike, current: npt.ArrayLike, threshold: float) -> tuple[float, bool]:
    """Kolmogorov-Smirnov distance ``max |F_ref - F_cur|`` between two histograms over ordered
    bins. On bins with one distinct value each it equals the exact two-sample statistic; on
    coarser bins it is a lower bound, short by at most the largest bin mass of either sample."""
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.sum() == 0 or c.sum() == 0:
        return float("nan"), False
    value = float(np.max(np.abs(np.cumsum(r) / r.sum() - np.cumsum(c) / c.sum())))
    return value, value > threshold


def ks_pvalue(distance: float, n_reference: int, n_current: int) -> float:
    """Asymptotic two-sided p-value of a KS distance (scipy's ``ks_2samp(method="asymp")``)."""
    if not (n_reference and n_current) or distance != distance:
        return float("nan")
    en = n_reference * n_current / (n_reference + n_current)
    return float(sps.kstwo.sf(distance, np.round(en)))


def chisquare(
    reference: npt.ArrayLike, current: npt.ArrayLike, threshold: float
) -> tuple[float, bool]:
    """Chi-square goodness-of-fit p-value of the current counts against the reference mix.

    A category absent from the reference but present in the batch makes the statistic infinite
    (p-value 0); Evidently hands scipy a zero expectation there and gets NaN or inf instead.
    """
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.sum() == 0 or c.sum() == 0:
        return float("nan"), False
    if np.any((r == 0) & (c > 0)):
        return 0.0, True
    keep = r > 0
    expected = r[keep] * (c.sum() / r.sum())
    if keep.sum() < 2:
        return 1.0, False
    p_value = float(sps.chisquare(c[keep], expected).pvalue)
    return p_value, p_value < threshold


# --- the registry -----------------------------------------------------------------------------

TestFunction = Callable[[npt.ArrayLike, npt.ArrayLike, float], tuple[float, bool]]


@dataclass(frozen=True)
class StatTest:
    """A drift test: its function, what it applies to, and how to read its value.

    ``histogram`` names the bins it is computed on: ``"bins"`` (the coarse quantile bins of a
    numeric feature, or the categories), ``"grid"`` (the fine quantile grid of a numeric
    feature, for distances between CDFs), ``"categories"``. ``drift_above``: a value above the
    threshold means drift (distances); otherwise below it does (p-values).
    """

    name: str
    function: TestFunction
    feature_types: frozenset[str]
    default_threshold: float
    histogram: Mapping[str, str] = field(default_factory=dict)
    drift_above: bool = True


TESTS: dict[str, StatTest] = {}


def register(test: StatTest) -> StatTest:
    """Add *test* to :data:`TESTS` under its name."""
    TESTS[test.name] = test
    return test


def get_test(name: str) -> StatTest:
    try:
        return TESTS[name]
    except KeyError:
        raise KeyError(f"unknown drift test '{name}' (known: {', '.join(sorted(TESTS))})") from None


register(
    StatTest(
        "psi",
        psi,
        frozenset({"numeric", "categorical"}),
        0.2,
        {"numeric": "bins", "categorical": "categories"},
    )
)
register(StatTest("ks", ks, frozenset({"numeric"}), 0.1, {"numeric": "grid"}))
register(
    StatTest(
        "chisquare",
        chisquare,
        frozenset({"categorical"}),
        0.05,
        {"categorical": "categories"},
        drift_above=False,
    )
)

#: the test used for a feature type when the method asked for does not apply to it
FALLBACK = {("ks", "categorical"): "chisquare"}


def test_for(method: str, feature_type: str) -> StatTest:
    """The registered test that *method* means for a feature of *feature_type*."""
    test = get_test(method)
    if feature_type in test.feature_types:
        return test
    return get_test(FALLBACK[(method, feature_type)])


# --- streaming counters -----------------------------------------------------------------------


@dataclass
class NumericCounter:
    """Counts a numeric column chunk by chunk into fixed bins: memory O(bins), not O(rows)."""

    bins: Binning
    grid: Binning
    rows: int = 0
    missing: int = 0
    counts: IntArray = field(init=False)
    grid_counts: IntArray = field(init=False)

    def __post_init__(self) -> None:
        self.counts = np.zeros(self.bins.n_bins, dtype=np.int64)
        self.grid_counts = np.zeros(self.grid.n_bins, dtype=np.int64)

    def update(self, values: FloatArray) -> None:
        """Add one chunk; NaN and +-inf count as missing (Evidently drops both)."""
        finite = values[np.isfinite(values)]
        self.rows += int(values.size)
        self.missing += int(values.size - finite.size)
        ordered = np.sort(finite)
        self.counts += self.bins.count_sorted(ordered)
        self.grid_counts += self.grid.count_sorted(ordered)


@dataclass
class CategoryCounter:
    """Counts categories chunk by chunk. Categories beyond *max_categories* distinct ones are
    pooled under :data:`OTHER` so that a column of unique strings cannot exhaust memory."""

    max_categories: int = 1000
    rows: int = 0
    missing: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    pooled: int = 0

    def update(self, counts: Mapping[str, int], rows: int, missing: int) -> None:
        """Add one chunk, already counted (e.g. by ``Series.value_counts``)."""
        self.rows += rows
        self.missing += missing
        for key, n in counts.items():
            if key in self.counts or len(self.counts) < self.max_categories:
                self.counts[key] = self.counts.get(key, 0) + int(n)
            else:
                self.pooled += int(n)


#: the key under which categories past the counter's limit are pooled
OTHER = "(other)"


def category_histograms(
    reference: Mapping[str, int], current: Mapping[str, int], pooled: int = 0
) -> tuple[list[str], IntArray, IntArray]:
    """Align two category counts on the union of their keys (reference order first, then the
    new categories sorted): ``(keys, reference counts, current counts)``."""
    new = sorted(k for k in current if k not in reference)
    keys = [*reference, *new]
    ref = np.array([reference.get(k, 0) for k in keys], dtype=np.int64)
    cur = np.array([current.get(k, 0) for k in keys], dtype=np.int64)
    if pooled:
        keys.append(OTHER)
        ref = np.append(ref, 0)
        cur = np.append(cur, pooled)
    return keys, ref, cur


def drop_empty(*histograms: IntArray) -> list[IntArray]:
    """The histograms without the bins that are empty in all of them (they carry no evidence,
    but would add ``(eps_r - eps_c) * ln(eps_r / eps_c)`` to a PSI through the empty-bin fill)."""
    keep = np.zeros(histograms[0].shape, dtype=bool)
    for h in histograms:
        keep |= h > 0
    return [h[keep] for h in histograms]


def evaluate(
    test: StatTest,
    reference: Iterable[int] | IntArray,
    current: Iterable[int] | IntArray,
    threshold: float,
) -> tuple[float, bool]:
    """Run *test* on two histograms over the same bins."""
    r = np.asarray(list(reference) if not isinstance(reference, np.ndarray) else reference)
    c = np.asarray(list(current) if not isinstance(current, np.ndarray) else current)
    return test.function(r, c, threshold)
