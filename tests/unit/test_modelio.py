"""Canonical skops files: the same model gives the same bytes; loading refuses unknown types."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlopsctl.errors import StageFailedError
from mlopsctl.stages.modelio import ZIP_DATE, canonicalize, load_model, save_model

REPO = Path(__file__).resolve().parents[2]


def breast_cancer() -> tuple[pd.DataFrame, pd.Series]:
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return x, y


def shop(n: int = 300) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(
        {
            "size": rng.normal(50, 10, n),
            "colour": rng.choice(["red", "green", "blue"], n),
            "weight": rng.normal(3, 1, n),
        }
    )
    y = 2 * x["size"] + (x["colour"] == "red") * 15 + rng.normal(0, 1, n)
    return x, y


def logistic() -> tuple[Pipeline, pd.DataFrame]:
    x, y = breast_cancer()
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    preprocess = ColumnTransformer([("numeric", numeric, list(x.columns))], sparse_threshold=0)
    model = Pipeline([("preprocess", preprocess), ("model", LogisticRegression(max_iter=300))])
    return model.fit(x, y), x


def boosting() -> tuple[Pipeline, pd.DataFrame]:
    x, y = shop()
    preprocess = ColumnTransformer(
        [
            ("numeric", StandardScaler(), ["size", "weight"]),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
        ],
        sparse_threshold=0,
    )
    regressor = HistGradientBoostingRegressor(max_iter=30, random_state=0)
    model = Pipeline([("preprocess", preprocess), ("model", regressor)])
    return model.fit(x, y), x


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fit", [logistic, boosting], ids=["logistic", "boosting"])
def test_same_model_same_bytes_and_same_predictions(
    tmp_path: Path, fit: Callable[[], tuple[Pipeline, pd.DataFrame]]
) -> None:
    model, x = fit()
    save_model(model, tmp_path / "a.skops")
    save_model(model, tmp_path / "b.skops")
    refit, _ = fit()  # from scratch, same seed
    save_model(refit, tmp_path / "c.skops")
    assert md5(tmp_path / "a.skops") == md5(tmp_path / "b.skops") == md5(tmp_path / "c.skops")

    loaded = load_model(tmp_path / "a.skops")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    if hasattr(model, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


def test_canonical_zip_layout(tmp_path: Path) -> None:
    model, _ = boosting()
    save_model(model, tmp_path / "m.skops")
    data = (tmp_path / "m.skops").read_bytes()
    assert canonicalize(data) == data  # idempotent
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names) and names[-1] == "schema.json"
        assert all(n == "schema.json" or n[:6].isdigit() for n in names)
        assert {i.date_time for i in infos} == {ZIP_DATE}
        assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
        schema = json.loads(zf.read("schema.json"))

    ids: list[int] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("__id__"), int):
                ids.append(node["__id__"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert ids and max(ids) < 10_000 and min(ids) >= 1  # sequential, not id(obj)


def test_determinism_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    """Fresh processes with different PYTHONHASHSEED (set order!) write the same bytes."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from mlopsctl.stages.modelio import save_model\n"
        "m = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], ['a', 'b', 'a', 'b'])\n"
        "m.tags_ = {'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'}  # a set of str\n"
        "save_model(m, Path(sys.argv[1]))\n"
    )
    digests = set()
    for seed in ("1", "2", "3"):
        out = tmp_path / f"m{seed}.skops"
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        subprocess.run([sys.executable, "-c", code, str(out)], env=env, check=True)
        digests.add(md5(out))
    assert len(digests) == 1
    loaded = load_model(tmp_path / "m1.skops")
    assert loaded.tags_ == {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}
    assert list(loaded.predict([[0.0], [3.0]])) == ["a", "b"]


class Unvetted:
    """A type from outside scikit-learn, numpy and scipy."""

    def __init__(self) -> None:
        self.value = 3


def test_untrusted_types_are_refused(tmp_path: Path) -> None:
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    model.extra_ = Unvetted()
    save_model(model, tmp_path / "m.skops")
    with pytest.raises(StageFailedError) as info:
        load_model(tmp_path / "m.skops")
    assert f"{__name__}.Unvetted" in str(info.value)
    assert "refusing to load" in str(info.value)
    # the module is trusted once it is an allowed estimator module
    assert load_model(tmp_path / "m.skops", allowed_modules=(__name__,)).extra_.value == 3


def test_unreadable_files_are_stage_errors(tmp_path: Path) -> None:
    with pytest.raises(StageFailedError, match="cannot read the model file"):
        load_model(tmp_path / "absent.skops")
    (tmp_path / "junk.skops").write_bytes(b"not a zip")
    with pytest.raises(StageFailedError, match="is not a valid skops model file"):
        load_model(tmp_path / "junk.skops")
