#!/usr/bin/env python3
"""Regenerate mlopsctl/stages/trusted_types.py: the exact types a model file may contain.

``load_model`` trusts a type in a skops file only when mlopsctl's own writer can produce it. This
script finds those types by doing what ``train`` does: it builds every preprocessing combination
the schema allows with ``mlopsctl.stages.train.make_pipeline``, fits it with every scikit-learn
classifier and regressor (``sklearn.utils.all_estimators``, default params seeded as ``train``
seeds them, plus the param variants that change what a fitted estimator holds), tunes some with
grid and random search as ``train`` does, dumps each fitted pipeline with skops and collects
``skops.io.get_untrusted_types``: the types skops itself does not trust by default (imported as
the loader imports it, ``modelio.skops_io``: without skops's blanket trust of every scikit-learn
estimator, so the estimators and transformers train writes are listed too).

    python scripts/trusted_types.py            # rewrite mlopsctl/stages/trusted_types.py
    python scripts/trusted_types.py --check    # exit 1 if it differs from what the installed
                                               # scikit-learn, numpy and skops produce

Run it after upgrading scikit-learn, numpy, scipy or skops, and review the diff: every name
added is a type that a model file from a pull request may make the loader construct.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import itertools
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUTPUT = ROOT / "mlopsctl" / "stages" / "trusted_types.py"

#: value sets of model.preprocessing and model.tuning.method (see schemas/usecase.schema.json)
NUMERIC = ("standard", "minmax", "robust", "none")
CATEGORICAL = ("onehot", "ordinal")
IMPUTE = ("median", "mean", "most_frequent", "none")
TUNING = ("grid", "random")

#: distance metrics a neighbours estimator builds a tree index for (each is its own class)
METRICS = ("euclidean", "manhattan", "chebyshev", "minkowski")

#: params that change which helper objects a fitted estimator holds (a tree index, a loss, a
#: calibration, a validation split): each variant is fitted too, besides the defaults
NEIGHBOURS: list[dict[str, Any]] = [
    *({"algorithm": a} for a in ("kd_tree", "ball_tree", "brute")),
    *({"algorithm": a, "metric": m} for a in ("kd_tree", "ball_tree") for m in METRICS),
    {"algorithm": "ball_tree", "metric": "minkowski", "p": 3},
]
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "KNeighborsClassifier": NEIGHBOURS,
    "KNeighborsRegressor": NEIGHBOURS,
    "RadiusNeighborsClassifier": [{**v, "radius": 10.0} for v in NEIGHBOURS],
    "RadiusNeighborsRegressor": [{**v, "radius": 10.0} for v in NEIGHBOURS],
    "MLPClassifier": [{"solver": "sgd"}, {"solver": "lbfgs"}],
    "MLPRegressor": [{"solver": "sgd"}, {"solver": "lbfgs"}],
    "SVC": [{"probability": True}],
    "NuSVC": [{"probability": True}],
    "HistGradientBoostingClassifier": [{"early_stopping": True, "scoring": "roc_auc"}],
    "HistGradientBoostingRegressor": [
        {"early_stopping": True},
        *({"loss": loss} for loss in ("absolute_error", "gamma", "poisson", "quantile")),
    ],
    "GradientBoostingClassifier": [{"loss": "exponential"}, {"n_iter_no_change": 2}],
    "GradientBoostingRegressor": [
        *({"loss": loss} for loss in ("absolute_error", "huber", "quantile")),
        {"n_iter_no_change": 2},
    ],
    "RandomForestClassifier": [{"oob_score": True}],
    "RandomForestRegressor": [{"oob_score": True}],
    "ExtraTreesClassifier": [{"bootstrap": True, "oob_score": True}],
    "ExtraTreesRegressor": [{"bootstrap": True, "oob_score": True}],
    "LogisticRegression": [{"solver": s} for s in ("liblinear", "newton-cg", "sag", "saga")],
    "SGDClassifier": [{"loss": "log_loss"}, {"early_stopping": True}],
    "SGDRegressor": [{"early_stopping": True}],
    "TweedieRegressor": [{"power": 1.5}, {"power": 1.5, "link": "identity"}],
}

#: trees (or boosting stages) of each ensemble fitted here: enough for every part of one
#: (out-of-bag scores, early stopping on a validation split), see ``fit``
FEW_ESTIMATORS = 10
FEW_ITERATIONS = 20  # iterations of each solver or booster (max_iter) fitted here

#: the estimators tuned with grid and random search: tuning refits one pipeline, so what its
#: model file holds is the same as without tuning; fitting a few proves it
TUNED = {
    "LogisticRegression": {"C": [0.5, 1.0]},
    "HistGradientBoostingRegressor": {"max_iter": [5, 10]},
}


def frames(problem: str) -> tuple[Any, Any]:
    """A small frame with every column kind ``train`` meets, and a target for *problem*."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 90
    x = pd.DataFrame(
        {
            "num_f": rng.normal(0, 1, n),
            "num_i": rng.integers(0, 50, n),
            "cat_s": pd.Series(rng.choice(["a", "b", "c"], n), dtype="str"),
            "cat_b": rng.choice([True, False], n),
            "cat_i": rng.integers(0, 4, n),
        }
    )
    score = x["num_f"] + (x["cat_s"] == "a") + rng.normal(0, 0.3, n)
    if problem == "regression":
        y = pd.Series(np.abs(score) * 10 + 1, name="y")  # positive: gamma and poisson losses
    elif problem == "binary_str":
        y = pd.Series(np.where(score > 0.3, "yes", "no"), name="y", dtype="str")
    elif problem == "binary_int":
        y = pd.Series((score > 0.3).astype(int), name="y")
    else:  # multiclass
        y = pd.Series(np.digitize(score, [0.0, 1.0]).astype(str), name="y", dtype="str")
    return x, y


def feature_sets() -> Iterator[Any]:
    from mlopsctl.stages.frames import FeatureSet

    yield FeatureSet(("num_f", "num_i"), ("cat_s", "cat_b", "cat_i"), (), False)
    yield FeatureSet(("num_f", "num_i"), (), (), False)  # numeric only
    yield FeatureSet((), ("cat_s", "cat_b"), (), False)  # categorical only


def estimators() -> Iterator[tuple[str, type, dict[str, Any]]]:
    """(problem, class, params) for every scikit-learn classifier and regressor and variant."""
    from sklearn.utils import all_estimators

    for kind, problems in (
        ("classifier", ("binary_str", "binary_int", "multiclass")),
        ("regressor", ("regression",)),
    ):
        for name, cls in all_estimators(type_filter=kind):
            for params in ({}, *VARIANTS.get(name, [])):
                for problem in problems:
                    yield problem, cls, params


def dump_types(model: Any) -> set[str]:
    from mlopsctl.stages.modelio import skops_io

    sio = skops_io()  # as the loader imports it: no blanket trust of every estimator
    return set(sio.get_untrusted_types(data=sio.dumps(model)))


def generate(verbose: bool = False) -> tuple[set[str], list[str]]:
    """The union of untrusted types over every model the writer can produce; what was skipped."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    from mlopsctl.spec.model import Model, Preprocessing
    from mlopsctl.stages.train import make_pipeline

    found: set[str] = set()
    skipped: list[str] = []
    full, *partial = list(feature_sets())

    def build(problem: str, cls: type, params: dict[str, Any], prep: Preprocessing, fs: Any) -> Any:
        estimator = cls(**params)
        defaults = estimator.get_params(deep=False)
        if "random_state" in defaults:  # train seeds it like the split
            estimator.set_params(random_state=0)
        if "n_estimators" in defaults and "n_estimators" not in params:
            # how many trees (or boosting stages) a model holds does not change their types;
            # 10 instead of the default 100 takes a third off this script (and its CI test)
            estimator.set_params(n_estimators=FEW_ESTIMATORS)
        limit = defaults.get("max_iter")
        if isinstance(limit, int) and limit > FEW_ITERATIONS and "max_iter" not in params:
            # nor how many iterations a solver or a booster ran (converged or not)
            estimator.set_params(max_iter=FEW_ITERATIONS)
        return make_pipeline(Model(cls.__name__, preprocessing=prep), fs, estimator)

    def fit(problem: str, pipeline: Any, fs: Any) -> Any:
        x, y = frames(problem)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # the capped max_iter
            return pipeline.fit(x[fs.columns], y)

    # every preprocessing combination, on every feature set; a combination that builds the same
    # pipeline as one fitted already (an option for a column kind the feature set lacks) is the
    # same model: fitted once
    from sklearn.linear_model import LogisticRegression

    built: set[str] = set()
    for numeric, categorical, impute in itertools.product(NUMERIC, CATEGORICAL, IMPUTE):
        prep = Preprocessing(numeric, categorical, impute)
        for fs in (full, *partial):
            pipeline = build("binary_str", LogisticRegression, {}, prep, fs)
            key = repr(sorted((k, repr(v)) for k, v in pipeline.get_params(deep=True).items()))
            if key not in built:
                built.add(key)
                found |= dump_types(fit("binary_str", pipeline, fs))
    # every estimator (and variant) behind the default preprocessing
    for problem, cls, params in estimators():
        label = f"{cls.__name__}({params}) on {problem}"
        try:
            types = set()
            # the default preprocessing, then non-negative numbers for the naive Bayes kinds
            for prep in (Preprocessing(), Preprocessing("minmax", "ordinal")):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with contextlib.suppress(ValueError):
                        pipeline = build(problem, cls, params, prep, full)
                        types = dump_types(fit(problem, pipeline, full))
                        break
            else:
                raise ValueError("cannot fit this data with either preprocessing")
        except Exception as exc:  # needs an estimator argument (a meta-estimator), a 2-D target
            if not params:
                skipped.append(f"{cls.__name__}: {type(exc).__name__}")
            continue
        if verbose:
            print(label, sorted(types), file=sys.stderr)
        found |= types
    # tuning: train saves the refitted best pipeline
    for name, grid in TUNED.items():
        cls = next(c for n, c in _all() if n == name)
        problem = "regression" if "Regressor" in name else "binary_str"
        x, y = frames(problem)
        for search_cls in (GridSearchCV, RandomizedSearchCV):
            pipeline = make_pipeline(Model(name), full, cls())
            grid_ = {f"model__{k}": v for k, v in grid.items()}
            kwargs: dict[str, Any] = {"cv": 3, "error_score": "raise"}
            if search_cls is RandomizedSearchCV:
                kwargs.update(n_iter=2, random_state=0)
            search = search_cls(pipeline, grid_, **kwargs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                search.fit(x[full.columns], y)
            found |= dump_types(search.best_estimator_)
    return found, sorted(set(skipped))


def _all() -> list[tuple[str, type]]:
    from sklearn.utils import all_estimators

    return list(all_estimators(type_filter=["classifier", "regressor"]))


def render(types: set[str], skipped: list[str]) -> str:
    import numpy
    import scipy
    import sklearn
    import skops

    lines = [
        '"""The exact types a model file written by train may hold, estimators and transformers',
        "among them (beyond skops's defaults for numpy, scipy and a few scikit-learn internals).",
        "",
        "GENERATED by scripts/trusted_types.py: do not edit; rerun the script after upgrading",
        "scikit-learn, numpy, scipy or skops, and review the diff.",
        "",
        "Estimators the generator could not fit with default params, so they add no types of",
        "their own (train cannot build most of them either: a meta-estimator needs an estimator",
        "argument that YAML params cannot give, a multi-task one needs a 2-D target):",
        *(f"  {line}" for line in skipped),
        '"""',
        "",
        "#: the library versions the set was generated with",
        "GENERATED_WITH = {",
        f'    "numpy": "{numpy.__version__}",',
        f'    "scipy": "{scipy.__version__}",',
        f'    "sklearn": "{sklearn.__version__}",',
        f'    "skops": "{skops.__version__}",',
        "}",
        "",
        "TRUSTED_TYPES = frozenset(",
        "    {",
        *(f'        "{name}",' for name in sorted(types)),
        "    }",
        ")",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--verbose", action="store_true", help="print the types of each model")
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(io.StringIO()):  # some estimators print while fitting
        types, skipped = generate(args.verbose)
    text = render(types, skipped)
    current = OUTPUT.read_text("utf-8") if OUTPUT.exists() else ""
    if args.check:
        if text != current:
            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), str(OUTPUT), "generated", lineterm=""
            )
            print("\n".join(diff))
            print(f"{OUTPUT} is out of date: run python scripts/trusted_types.py", file=sys.stderr)
            return 1
        return 0
    tmp = OUTPUT.with_suffix(".tmp")
    tmp.write_text(text, "utf-8")
    tmp.replace(OUTPUT)
    print(f"wrote {OUTPUT} ({len(types)} types)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
