"""Model files: every model train writes loads; anything else is refused, and never runs code.

The loader trusts exact type names (skops's defaults for numpy, scipy and a few scikit-learn
internals, the generated mlopsctl/stages/trusted_types.py and the spec's estimator class), never
module prefixes.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlopsctl.compile.layout import UseCasePaths
from mlopsctl.spec.model import UseCase, build
from mlopsctl.stages import stage_function
from mlopsctl.stages.base import StageContext
from mlopsctl.stages.modelio import load_model

REPO = Path(__file__).resolve().parents[2]

#: the value sets the schema allows for model.preprocessing and model.tuning.method
NUMERIC = ("standard", "minmax", "robust", "none")
CATEGORICAL = ("onehot", "ordinal")
IMPUTE = ("median", "mean", "most_frequent", "none")

CLASSIFIERS = (
    "sklearn.linear_model.LogisticRegression",
    "sklearn.ensemble.RandomForestClassifier",
    "sklearn.ensemble.HistGradientBoostingClassifier",
    "sklearn.ensemble.GradientBoostingClassifier",
    "sklearn.svm.SVC",
    "sklearn.neighbors.KNeighborsClassifier",
    "sklearn.tree.DecisionTreeClassifier",
    "sklearn.ensemble.ExtraTreesClassifier",
)
REGRESSORS = (
    "sklearn.ensemble.RandomForestRegressor",
    "sklearn.ensemble.HistGradientBoostingRegressor",
    "sklearn.ensemble.GradientBoostingRegressor",
    "sklearn.linear_model.Ridge",
    "sklearn.linear_model.LinearRegression",
    "sklearn.neighbors.KNeighborsRegressor",
    "sklearn.tree.DecisionTreeRegressor",
    "sklearn.ensemble.ExtraTreesRegressor",
)
#: estimators that take missing values (so that preprocessing impute: none can train them)
TAKES_NAN = (
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
)
#: small and fast: the point is what the fitted model holds, not how good it is
SMALL = {"n_estimators": 5, "max_iter": 5}
PROBLEMS = {
    "binary_classification": ("label", {"roc_auc": {"min": 0.0}}, CLASSIFIERS),
    "multiclass_classification": ("tier", {"accuracy": {"min": 0.0}}, CLASSIFIERS),
    "regression": ("amount", {"r2": {"min": -100.0}}, REGRESSORS),
}


# --- a real repository with a training set ------------------------------------------------------


def shop_frame(n: int = 160) -> pd.DataFrame:
    """Every kind of column train meets: float with gaps, int, text, bool; three targets."""
    rng = np.random.default_rng(3)
    size = rng.normal(50, 10, n)
    size[rng.random(n) < 0.05] = np.nan
    colour = rng.choice(["red", "green", "blue"], n)
    score = np.nan_to_num(size, nan=50) / 10 + (colour == "red") * 2 + rng.normal(0, 1, n)
    return pd.DataFrame(
        {
            "size": size,
            "items": rng.integers(1, 9, n),
            "colour": colour,
            "member": rng.choice([True, False], n),
            "label": np.where(score > np.median(score), "yes", "no"),
            "tier": np.digitize(score, np.quantile(score, [0.33, 0.66])),
            "amount": (score * 10).round(2),
        }
    )


def usecase(problem: str, estimator: str, **model: Any) -> UseCase:
    target, metrics, _ = PROBLEMS[problem]
    others = [t for p, (t, _, _) in PROBLEMS.items() if p != problem]
    doc: dict[str, Any] = {
        "apiVersion": "mlopsctl/v1",
        "kind": "UseCase",
        "metadata": {"name": "shop"},
        "goal": {"problem": problem, "target": target, "metrics": metrics},
        "data": {
            "sources": {"shop": {"format": "csv", "path": "data/shop.csv"}},
            "features": {
                "numeric": ["size", "items"],
                "categorical": ["colour", "member"],
                "drop": others,
            },
            "split": {"method": "random", "test_size": 0.25, "seed": 1},
        },
        "model": {"estimator": estimator, **model},
    }
    return build(UseCase, doc)


def stage(root: Path, uc: UseCase, kind: str) -> dict[str, Any]:
    """Run one built-in stage and move its outputs into *root*, as the runner does."""
    staging = root / ".staging"
    ctx = StageContext(root=root, usecase=uc, paths=UseCasePaths(uc.name), staging=staging)
    summary: dict[str, Any] = stage_function(kind)(ctx)
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        dest = root / path.relative_to(staging)
        dest.parent.mkdir(parents=True, exist_ok=True)
        path.replace(dest)
    shutil.rmtree(staging)
    return summary


@pytest.fixture(scope="module")
def shop_repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One repository per problem, ingested and split once for the whole module."""
    repos = {}
    for problem in PROBLEMS:
        root = tmp_path_factory.mktemp(problem)
        (root / "data").mkdir()
        shop_frame().to_csv(root / "data" / "shop.csv", index=False)
        uc = usecase(problem, "sklearn.linear_model.LogisticRegression")
        stage(root, uc, "ingest")
        stage(root, uc, "split")
        repos[problem] = root
    return repos


def params_for(estimator: str) -> dict[str, Any]:
    from mlopsctl.stages.modelio import import_estimator

    accepted = import_estimator(estimator, ("sklearn",))().get_params()
    return {k: v for k, v in SMALL.items() if k in accepted}


def cases() -> Iterator[tuple[str, str, tuple[str, str, str]]]:
    """Each estimator on each of its problems; the 32 preprocessing combinations rotate along."""
    combos = itertools.cycle(itertools.product(NUMERIC, CATEGORICAL, IMPUTE))
    for problem, (_, _, estimators) in PROBLEMS.items():
        for estimator in estimators:
            yield problem, estimator, next(combos)


def train_and_evaluate(root: Path, uc: UseCase) -> dict[str, Any]:
    """train, then evaluate: evaluate loads the model file through load_model."""
    stage(root, uc, "train")
    return stage(root, uc, "evaluate")


# --- every model train writes loads again -------------------------------------------------------


@pytest.mark.parametrize(
    ("problem", "estimator", "prep"),
    list(cases()),
    ids=[f"{p[:5]}-{e.rsplit('.', 1)[1]}-{'-'.join(c)}" for p, e, c in cases()],
)
def test_each_estimator_trains_and_loads(
    shop_repos: dict[str, Path], problem: str, estimator: str, prep: tuple[str, str, str]
) -> None:
    root = shop_repos[problem]
    numeric, categorical, impute = prep
    if impute == "none" and not estimator.endswith(TAKES_NAN):
        impute = "most_frequent"  # the data has gaps (every combination is covered below)
    uc = usecase(
        problem,
        estimator,
        params=params_for(estimator),
        preprocessing={"numeric": numeric, "categorical": categorical, "impute": impute},
    )
    stage(root, uc, "train")
    # loaded as evaluate loads it (evaluate itself runs in the tests below), and it predicts
    model = load_model(root / UseCasePaths("shop").model, estimator, ("sklearn",))
    assert len(model.predict(shop_frame().head(5))) == 5


@pytest.mark.slow
@pytest.mark.parametrize(
    "prep", list(itertools.product(NUMERIC, CATEGORICAL, IMPUTE)), ids="-".join
)
def test_every_preprocessing_combination_loads(
    shop_repos: dict[str, Path], prep: tuple[str, str, str]
) -> None:
    root = shop_repos["regression"]
    numeric, categorical, impute = prep
    estimator = "sklearn.ensemble.HistGradientBoostingRegressor"  # takes NaN: impute none works
    uc = usecase(
        "regression",
        estimator,
        params={"max_iter": 5},
        preprocessing={"numeric": numeric, "categorical": categorical, "impute": impute},
    )
    assert train_and_evaluate(root, uc)["n_test"] == 40


@pytest.mark.parametrize("method", ["grid", "random"])
def test_tuned_models_load(shop_repos: dict[str, Path], method: str) -> None:
    root = shop_repos["binary_classification"]
    tuning: dict[str, Any] = {"method": method, "cv": 3, "params": {"max_depth": [2, 3]}}
    if method == "random":
        tuning["n_iter"] = 2
    uc = usecase(
        "binary_classification",
        "sklearn.ensemble.RandomForestClassifier",
        params={"n_estimators": 5},
        tuning=tuning,
    )
    stage(root, uc, "train")
    evaluated = stage(root, uc, "evaluate")
    assert 0.0 <= evaluated["roc_auc"] <= 1.0


# --- the generated list matches the installed libraries -----------------------------------------


@pytest.mark.slow
def test_trusted_types_match_the_installed_libraries() -> None:
    """scripts/trusted_types.py, rerun against this scikit-learn, writes the committed file."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "trusted_types.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_trusted_types_are_exact_classes_never_a_function() -> None:
    """Each name is a class of scikit-learn or numpy (a constructor skops may call is a class)."""
    import importlib

    from mlopsctl.stages.trusted_types import TRUSTED_TYPES

    assert TRUSTED_TYPES
    for name in TRUSTED_TYPES:
        module, _, attr = name.rpartition(".")
        assert module.split(".")[0] in ("sklearn", "numpy", "scipy"), name
        assert isinstance(getattr(importlib.import_module(module), attr), type), name
