"""evaluate: score the model on the test set; write metrics.json and the plots (data + PNG).

Plot data is in the format of DVC's plot templates (a list of records), so ``dvc plots show``
renders it as well; the PNGs are for the model card and the HTML report.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlopsctl.errors import StageFailedError
from mlopsctl.fsutil import atomic_write
from mlopsctl.stages.base import StageContext, write_json
from mlopsctl.stages.frames import read_parquet
from mlopsctl.stages.modelio import load_model
from mlopsctl.stages.scoring import last_step

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

#: decimals kept in plot data
PLOT_DECIMALS = 6
#: every PNG: same size and resolution, so the same data gives the same bytes
FIGSIZE = (6.0, 4.5)
DPI = 100


def run(ctx: StageContext) -> dict[str, Any]:
    usecase = ctx.usecase
    problem, target = usecase.goal.problem, usecase.goal.target
    test = read_parquet(ctx, ctx.paths.test_set, "the test set")
    model = load_model(
        ctx.input(ctx.paths.model), usecase.model.estimator, ctx.allowed_estimator_modules
    )
    if target not in test.columns:
        raise StageFailedError(f"the target column '{target}' is not in the test set")
    names = [str(c) for c in getattr(model, "feature_names_in_", [])]
    missing = [c for c in names if c not in test.columns]
    if missing:
        raise StageFailedError(
            f"the test set lacks feature columns the model was trained on: {', '.join(missing)}"
        )
    x = test[names] if names else test.drop(columns=[target])
    y = test[target]
    if y.isna().any():
        raise StageFailedError(
            f"the target '{target}' has {int(y.isna().sum())} missing values in the test set"
        )
    if len(test) == 0:
        raise StageFailedError("the test set is empty")

    files = dict(zip(_plot_names(ctx, problem), ctx.paths.plot_files(problem), strict=True))
    try:
        if problem == "regression":
            metrics = _regression(ctx, model, x, y, files)
        elif problem in ("binary_classification", "multiclass_classification"):
            metrics = _classification(ctx, problem, model, x, y, files)
        else:
            raise StageFailedError(f"goal.problem: unknown problem '{problem}'")
    except (ValueError, TypeError) as exc:
        raise StageFailedError(f"evaluating the model on the test set failed: {exc}") from exc
    metrics = {k: float(v) for k, v in metrics.items()}
    not_finite = [k for k, v in metrics.items() if v != v or v in (float("inf"), float("-inf"))]
    if not_finite:
        raise StageFailedError(
            f"metrics {', '.join(not_finite)} are not finite on the test set "
            f"({len(test)} rows): is the test set large and varied enough?"
        )
    write_json(ctx.output(ctx.paths.metrics), {**metrics, "n_test": len(test)})
    return {**{k: round(v, 4) for k, v in metrics.items()}, "n_test": len(test)}


def _plot_names(ctx: StageContext, problem: str) -> list[str]:
    return [p.rsplit("/", 1)[-1] for p in ctx.paths.plot_files(problem)]


# --- metrics ----------------------------------------------------------------------------------


def _classification(
    ctx: StageContext, problem: str, model: Any, x: Any, y: Any, files: dict[str, str]
) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as m

    classes = list(model.classes_)
    last, xt = last_step(model, x)
    predicted = last.predict(xt)
    proba = last.predict_proba(xt) if hasattr(last, "predict_proba") else None
    unknown = sorted({str(v) for v in y.unique()} - {str(c) for c in classes})
    out: dict[str, float] = {"accuracy": m.accuracy_score(y, predicted)}
    if problem == "binary_classification":
        if len(classes) != 2:
            raise StageFailedError(
                f"binary_classification, but the model learned {len(classes)} classes "
                f"({', '.join(map(str, classes))}): use multiclass_classification"
            )
        positive = classes[1]
        if proba is not None:
            score = proba[:, 1]
        elif hasattr(last, "decision_function"):  # e.g. SVC without probability: no log_loss
            score = np.asarray(last.decision_function(xt), dtype=float)
        else:
            raise StageFailedError(
                "the estimator has neither predict_proba nor decision_function: "
                "roc_auc and the ROC curve need scores"
            )
        actual = (y == positive).to_numpy().astype(int)
        if len(set(actual)) < 2:
            raise StageFailedError(
                f"the test set holds a single class ({y.iloc[0]!r}): roc_auc is undefined; "
                "use a larger test set or stratify the split"
            )
        out["roc_auc"] = m.roc_auc_score(actual, score)
        for name, fn in (("f1", m.f1_score), ("precision", m.precision_score)):
            out[name] = fn(y, predicted, pos_label=positive, zero_division=0)
        out["recall"] = m.recall_score(y, predicted, pos_label=positive, zero_division=0)
        if proba is not None:
            out["log_loss"] = m.log_loss(y, proba, labels=classes)
        fpr, tpr, thresholds = m.roc_curve(actual, score)
        _write_roc(ctx, files, fpr, tpr, thresholds, probabilities=proba is not None)
    else:
        out["f1_macro"] = m.f1_score(y, predicted, average="macro", zero_division=0)
        out["f1_weighted"] = m.f1_score(y, predicted, average="weighted", zero_division=0)
        if proba is not None and not unknown:
            out["log_loss"] = m.log_loss(y, proba, labels=classes)
    labels = [*classes, *[u for u in unknown if u not in map(str, classes)]]
    _write_confusion(ctx, files, np.asarray(y), np.asarray(predicted), labels)
    return out


def _regression(
    ctx: StageContext, model: Any, x: Any, y: Any, files: dict[str, str]
) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as m

    predicted = np.asarray(model.predict(x), dtype=float)
    actual = np.asarray(y, dtype=float)
    out = {
        "rmse": m.root_mean_squared_error(actual, predicted),
        "mae": m.mean_absolute_error(actual, predicted),
        "r2": m.r2_score(actual, predicted),
        "mape": m.mean_absolute_percentage_error(actual, predicted),
    }
    _write_residuals(ctx, files, actual, predicted)
    return out


# --- plots ------------------------------------------------------------------------------------


def _round(value: Any) -> float:
    return round(float(value), PLOT_DECIMALS)


def _write_confusion(
    ctx: StageContext, files: dict[str, str], actual: Any, predicted: Any, labels: Sequence[Any]
) -> None:
    import numpy as np

    pairs = [(str(a), str(p)) for a, p in zip(actual, predicted, strict=True)]
    atomic_write(ctx.output(files["confusion.json"]), confusion_json(pairs))
    names = [str(c) for c in labels]
    index = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(names), len(names)), dtype=int)
    for a, p in pairs:
        matrix[index[a], index[p]] += 1
    fig = _figure()
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = list(range(len(names)))
    ax.set_xticks(ticks, names, rotation=45 if len(names) > 4 else 0, ha="right")
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"Confusion matrix ({ctx.usecase.name})")
    threshold = matrix.max() / 2 if matrix.size else 0
    if len(names) <= 20:
        for i in range(len(names)):
            for j in range(len(names)):
                colour = "white" if matrix[i, j] > threshold else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour)
    _save_png(ctx, files["confusion.png"], fig)


def confusion_json(pairs: Sequence[tuple[str, str]]) -> str:
    """The records ``{"actual": a, "predicted": p}`` as :func:`write_json` writes them.

    Byte for byte the same text, made without ``json.dumps(indent=2)``, whose pure-Python
    encoder spent ~4 us per test row; each distinct label is encoded once.
    """
    if not pairs:
        return "[]\n"
    encode = json.JSONEncoder(ensure_ascii=False).encode
    quoted: dict[str, str] = {}
    for a, p in set(pairs):
        quoted.setdefault(a, encode(a))
        quoted.setdefault(p, encode(p))
    records = [
        f'  {{\n    "actual": {quoted[a]},\n    "predicted": {quoted[p]}\n  }}' for a, p in pairs
    ]
    return "[\n" + ",\n".join(records) + "\n]\n"


def _write_roc(
    ctx: StageContext,
    files: dict[str, str],
    fpr: np.ndarray,
    tpr: np.ndarray,
    thr: np.ndarray,
    *,
    probabilities: bool,
) -> None:
    import numpy as np
    from sklearn.metrics import auc

    # roc_curve starts at threshold inf (nothing predicted positive), which JSON cannot hold:
    # 1.0 for probabilities, else one above the highest finite score
    is_finite = np.isfinite(thr)
    top = 1.0 if probabilities or not is_finite.any() else float(thr[is_finite].max()) + 1.0
    finite = np.where(is_finite, thr, top)
    rows = [
        {"fpr": _round(f), "tpr": _round(t), "threshold": _round(h)}
        for f, t, h in zip(fpr, tpr, finite, strict=True)
    ]
    write_json(ctx.output(files["roc.json"]), rows)
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, label=f"ROC (AUC = {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC curve ({ctx.usecase.name})")
    ax.legend(loc="lower right")
    _save_png(ctx, files["roc.png"], fig)


def _write_residuals(
    ctx: StageContext, files: dict[str, str], actual: np.ndarray, predicted: np.ndarray
) -> None:
    residual = actual - predicted
    rows = [
        {"actual": _round(a), "predicted": _round(p), "residual": _round(r)}
        for a, p, r in zip(actual, predicted, residual, strict=True)
    ]
    write_json(ctx.output(files["residuals.json"]), rows)
    fig = _figure()
    ax = fig.add_subplot()
    ax.scatter(predicted, residual, s=10, alpha=0.6)
    ax.axhline(0.0, color="grey", linestyle="--")
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (actual - predicted)")
    ax.set_title(f"Residuals ({ctx.usecase.name})")
    _save_png(ctx, files["residuals.png"], fig)


def _figure() -> Figure:
    # the object API with an Agg canvas: no pyplot state, no GUI backend, thread-safe
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="tight")
    FigureCanvasAgg(fig)
    return fig


def _save_png(ctx: StageContext, rel: str, fig: Figure) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    atomic_write(ctx.output(rel), buffer.getvalue())
