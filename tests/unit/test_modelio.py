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
import skops.io
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


class HouseRegression(LogisticRegression):
    """An estimator of the project's own (allowed_estimator_modules), as the spec may name."""


def test_untrusted_types_are_refused(tmp_path: Path) -> None:
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    model.extra_ = Unvetted()
    save_model(model, tmp_path / "m.skops")
    with pytest.raises(StageFailedError) as info:
        load_model(tmp_path / "m.skops")
    assert f"{__name__}.Unvetted" in str(info.value)
    assert "refusing to load" in str(info.value)
    # even with its module allowed: only the estimator the spec names is trusted, not its module
    with pytest.raises(StageFailedError, match=f"{__name__}.Unvetted"):
        load_model(tmp_path / "m.skops", f"{__name__}.HouseRegression", (__name__,))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # unscaled data
def test_a_scikit_learn_type_train_never_writes_is_refused(tmp_path: Path) -> None:
    """skops trusts every scikit-learn estimator by default; the loader does not (skops_io).

    PCA and StackingClassifier are scikit-learn estimators that no spec makes train write. The
    refusal holds in this process, where skops.io was imported the plain way first (at the top
    of this module), and in a fresh interpreter that imports it only through the loader: the
    loader's trust does not depend on import order.
    """
    from sklearn.decomposition import PCA
    from sklearn.ensemble import StackingClassifier

    x, y = breast_cancer()
    pca = Pipeline([("pca", PCA(n_components=2)), ("model", LogisticRegression(max_iter=500))])
    save_model(pca.fit(x, y), tmp_path / "pca.skops")
    stack = StackingClassifier([("lr", LogisticRegression(max_iter=500))], cv=2)
    save_model(stack.fit(x, y), tmp_path / "stack.skops")
    for name, refused in (("pca", "sklearn.decomposition._pca.PCA"), ("stack", "Stacking")):
        with pytest.raises(StageFailedError, match=f"refusing to load .*{refused}"):
            load_model(tmp_path / f"{name}.skops")
        code = (
            "import sys\n"
            "from mlopsctl.stages.modelio import load_model\n"
            "try:\n"
            f"    load_model({str(tmp_path / f'{name}.skops')!r})\n"
            "except Exception as exc:\n"
            "    print(exc)\n"
            "print(sorted(m for m in ('pytest', 'dask', 'sklearn.utils._testing') "
            "if m in sys.modules))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        assert "refusing to load" in out[0] and refused in out[0], out
        assert out[1] == "[]", out  # no scan of all of scikit-learn (which imports pytest, dask)
    # what train writes still loads, here and there
    save_model(logistic()[0], tmp_path / "ok.skops")
    assert isinstance(load_model(tmp_path / "ok.skops"), Pipeline)


def test_the_specs_estimator_class_is_trusted_from_an_allowed_module(tmp_path: Path) -> None:
    model = HouseRegression().fit([[0.0], [1.0]], [0, 1])
    save_model(model, tmp_path / "m.skops")
    estimator = f"{__name__}.HouseRegression"
    assert type(load_model(tmp_path / "m.skops", estimator, (__name__,))) is HouseRegression
    with pytest.raises(StageFailedError, match=f"refusing to load .*{estimator}"):
        load_model(tmp_path / "m.skops")
    with pytest.raises(StageFailedError, match=r"estimator module .* is not allowed"):
        load_model(tmp_path / "m.skops", estimator, ("sklearn",))


# --- hostile model files ------------------------------------------------------------------------


class Payload:
    """Pickles as ``Payload(code, {})``: skops writes it as a constructor call."""

    def __init__(self, code: str, env: dict[str, Any]) -> None:
        self.code, self.env = code, env

    def __reduce__(self) -> tuple[Any, ...]:
        return (Payload, (self.code, {}))


def poisoned(marker: Path, constructor: tuple[str, str]) -> bytes:
    """A fitted model whose file makes skops call *constructor* with code that writes *marker*.

    skops loads a ``ConstructorFromReduceNode`` by calling the named type with the stored args;
    nothing checks that the name is a type, so a function such as numpy's ``runstring`` (which
    ``exec``s its first argument) or ``builtins.exec`` is called instead.
    """
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    model.extra_ = Payload(f"open({str(marker)!r}, 'w').write('pwned')", {})
    members = _members(skops.io.dumps(model))
    schema = json.loads(members["schema.json"])
    node = schema["content"]["content"]["extra_"]
    assert node["__loader__"] == "ConstructorFromReduceNode"
    node["__module__"], node["__class__"] = constructor
    members["schema.json"] = json.dumps(schema).encode()
    return _zip(members)


def _members(raw: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "constructor",
    [("numpy.testing._private.utils", "runstring"), ("builtins", "exec")],
    ids=["numpy-runstring", "builtins-exec"],
)
def test_a_poisoned_model_file_is_refused_and_runs_nothing(
    tmp_path: Path, constructor: tuple[str, str]
) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "m.skops").write_bytes(poisoned(marker, constructor))
    try:
        with pytest.raises(StageFailedError) as info:
            load_model(tmp_path / "m.skops")
    finally:
        assert not marker.exists(), "the model file ran its code"
    assert ".".join(constructor) in str(info.value)
    assert "refusing to load" in str(info.value)
    assert not marker.exists()


def _schema_file(schema: Any) -> bytes:
    return _zip({"schema.json": json.dumps(schema).encode()})


def _valid() -> bytes:
    return skops.io.dumps(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))


def _broken_node() -> bytes:
    """A skops schema whose estimator node lacks its content's loader (skops: AttributeError)."""
    members = _members(_valid())
    schema = json.loads(members["schema.json"])
    del schema["content"]["__loader__"]
    members["schema.json"] = json.dumps(schema).encode()
    return _zip(members)


MALFORMED = {
    "random-bytes": (bytes(range(256)) * 8, "not a zip archive"),
    "truncated-zip": (_valid()[:700], "not a zip archive, or a truncated one"),
    "zip-without-schema": (_zip({"model.npy": b"x"}), "it has no schema.json"),
    "schema-not-json": (_zip({"schema.json": b"{nope"}), "its schema.json is not JSON"),
    "schema-a-list": (_schema_file([1, 2]), "its schema.json is not a skops schema"),
    "schema-node-broken": (_broken_node(), "does not describe objects skops can read"),
    "schema-a-string": (
        _schema_file(
            {
                "__class__": "str",
                "__module__": "builtins",
                "__loader__": "JsonNode",
                "content": '"hello"',
                "is_json": True,
                "protocol": 2,
            }
        ),
        "it holds a str, not a scikit-learn model",
    ),
    "unfitted-model": (
        skops.io.dumps(LogisticRegression()),
        "holds a model that was never fitted",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_model_files_give_one_clear_error(tmp_path: Path, case: str) -> None:
    content, expected = MALFORMED[case]
    (tmp_path / "m.skops").write_bytes(content)
    with pytest.raises(StageFailedError) as info:
        load_model(tmp_path / "m.skops")
    message = str(info.value)
    assert expected in message and "m.skops" in message
    assert "\n" not in message and "Error" not in message and "Traceback" not in message


def test_unreadable_files_are_stage_errors(tmp_path: Path) -> None:
    with pytest.raises(StageFailedError, match="cannot read the model file"):
        load_model(tmp_path / "absent.skops")
    (tmp_path / "junk.skops").write_bytes(b"not a zip")
    with pytest.raises(StageFailedError, match="is not a valid model file"):
        load_model(tmp_path / "junk.skops")
