"""What the four bare scripts share: the columns of the data and the model, as in the use case.

The benchmark's use case (benchmarks/repos.py) is written from these same constants, so that
mlopsctl and the bare scripts fit exactly the same pipeline on exactly the same split.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

NUMERIC = [
    "age",
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "num_products",
    "support_calls",
    "last_login_days",
    "credit_score",
]
CATEGORICAL = ["contract", "payment_method", "region", "plan"]
TARGET = "churned"
ID = "customer_id"
ESTIMATOR = "sklearn.ensemble.HistGradientBoostingClassifier"
ESTIMATOR_PARAMS: dict[str, Any] = {
    "max_iter": 100,
    "learning_rate": 0.1,
    "max_leaf_nodes": 31,
    "early_stopping": False,
    "random_state": 0,
}
TEST_SIZE = 0.2
SEED = 42


def args(n: int) -> list[Path]:
    """The script's *n* path arguments; the parent directories of outputs are created."""
    if len(sys.argv) != n + 1:
        sys.exit(f"usage: {Path(sys.argv[0]).name} " + " ".join(["PATH"] * n))
    paths = [Path(a) for a in sys.argv[1:]]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    return paths


def make_pipeline() -> Any:
    """Impute (median / most frequent), scale, one-hot encode, then the estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    preprocess = ColumnTransformer(
        [("numeric", numeric, NUMERIC), ("categorical", categorical, CATEGORICAL)],
        remainder="drop",
        sparse_threshold=0,
    )
    model = HistGradientBoostingClassifier(**ESTIMATOR_PARAMS)
    return Pipeline([("preprocess", preprocess), ("model", model)])
