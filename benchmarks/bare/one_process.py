"""The four bare steps in ONE process: the fair baseline for a tool that keeps its workers warm.

    one_process.py [--same-outputs] CSV OUTDIR [OUTDIR ...]

Same work, same files as ingest.py, split.py, train.py and evaluate.py run one after another
(Parquet snapshot, train/test Parquet files, joblib model, metrics.json), written the way one
script would: pandas and scikit-learn are imported once, and each step goes on with the frames
and the model it has in memory (every file is still written, none is read back).

``--same-outputs`` also does the work mlopsctl's stages do beyond those four steps, so that the
comparison can be made on equal outputs: the data checks of the validate stage (row count,
missing rates) with their report, the model as a canonical skops file (mlopsctl's writer)
instead of joblib, the input signature's ranges and categories, the monitoring reference profile
(``mlopsctl.monitor.profile``, with the model's probabilities on the training set), and the ROC
and confusion plots (JSON records and PNGs, drawn the way the evaluate stage draws them). It
imports mlopsctl for the profile and the skops writer: run it with mlopsctl on the path.

With several OUTDIRs the pipeline runs once per directory, one after another in this process
(imports paid once): the by-hand reference of the four-use-case benchmark (3b), where one such
process does what `apply --jobs 1` does and two side by side what `--jobs 2` does.
"""

import io
import json
import sys
from pathlib import Path

import joblib
import pandas as pd
from common import CATEGORICAL, NUMERIC, SEED, TARGET, TEST_SIZE, make_pipeline
from sklearn import metrics
from sklearn.model_selection import train_test_split


def main() -> None:
    argv = sys.argv[1:]
    same_outputs = "--same-outputs" in argv
    argv = [a for a in argv if a != "--same-outputs"]
    if len(argv) < 2:
        sys.exit("usage: one_process.py [--same-outputs] CSV OUTDIR [OUTDIR ...]")
    for out in argv[1:]:  # each OUTDIR: the whole pipeline again, in this same process
        scores = pipeline(Path(argv[0]), Path(out), same_outputs)
        print("one process: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))


def pipeline(csv: Path, out: Path, same_outputs: bool) -> dict[str, float]:
    """The four steps on *csv*, every file written under *out*; returns the test metrics."""
    out.mkdir(parents=True, exist_ok=True)
    snapshot, train_path, test_path = (out / f"{n}.parquet" for n in ("snapshot", "train", "test"))
    model_path, metrics_path = out / "model.joblib", out / "metrics.json"

    def write_json(name: str, value: object) -> None:
        """As mlopsctl writes its JSON files: sorted keys, two-space indent."""
        (out / name).write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")

    # 1. ingest
    frame = pd.read_csv(csv)
    frame.to_parquet(snapshot, engine="pyarrow", index=False)

    if same_outputs:  # the validate stage: min_rows and max_missing, and the report
        missing = {c: float(frame[c].isna().mean()) for c in NUMERIC + CATEGORICAL}
        checks = [{"rule": "min_rows", "rows": len(frame), "passed": len(frame) >= 1000}]
        checks += [
            {"rule": "max_missing", "column": c, "missing": m, "passed": m <= 0.05}
            for c, m in missing.items()
        ]
        write_json(
            "validation.json", {"passed": all(c["passed"] for c in checks), "checks": checks}
        )

    # 2. split
    train, test = train_test_split(
        frame, test_size=TEST_SIZE, random_state=SEED, stratify=frame[TARGET]
    )
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    train.to_parquet(train_path, engine="pyarrow", index=False)
    test.to_parquet(test_path, engine="pyarrow", index=False)

    # 3. train
    pipeline = make_pipeline().fit(train[NUMERIC + CATEGORICAL], train[TARGET])
    if same_outputs:
        from mlopsctl.monitor import profile
        from mlopsctl.stages.modelio import save_model

        save_model(pipeline, out / "model.skops")
        x_train = train[NUMERIC + CATEGORICAL]
        signature = {
            **{c: [float(x_train[c].min()), float(x_train[c].max())] for c in NUMERIC},
            **{c: sorted(x_train[c].dropna().unique().tolist()) for c in CATEGORICAL},
        }
        write_json("signature.json", signature)
        scores = pipeline.predict_proba(x_train)[:, 1]
        built = profile.build_profile(train, NUMERIC, CATEGORICAL, scores, TARGET)
        (out / "reference_profile.json").write_text(profile.dumps(built))
    else:
        joblib.dump(pipeline, model_path)

    # 4. evaluate
    model = pipeline
    x, y = test[NUMERIC + CATEGORICAL], test[TARGET]
    predicted = model.predict(x)
    proba = model.predict_proba(x)
    positive = model.classes_[1]
    scores = {
        "accuracy": metrics.accuracy_score(y, predicted),
        "roc_auc": metrics.roc_auc_score(y == positive, proba[:, 1]),
        "f1": metrics.f1_score(y, predicted, pos_label=positive),
        "precision": metrics.precision_score(y, predicted, pos_label=positive),
        "recall": metrics.recall_score(y, predicted, pos_label=positive),
        "log_loss": metrics.log_loss(y, proba, labels=model.classes_),
    }
    metrics_path.write_text(json.dumps({k: float(v) for k, v in scores.items()}, indent=2) + "\n")

    if (
        same_outputs
    ):  # the plots: records for `dvc plots`, and PNGs drawn as the evaluate stage does
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        def figure() -> Figure:
            fig = Figure(figsize=(6.0, 4.5), dpi=100, layout="tight")
            FigureCanvasAgg(fig)
            return fig

        def save_png(fig: Figure, name: str) -> None:
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
            (out / name).write_bytes(buffer.getvalue())

        actual = (y == positive).to_numpy().astype(int)
        fpr, tpr, thresholds = metrics.roc_curve(actual, proba[:, 1])
        thresholds = np.where(np.isfinite(thresholds), thresholds, 1.0)
        write_json(
            "roc.json",
            [
                {
                    "fpr": round(float(f), 6),
                    "tpr": round(float(t), 6),
                    "threshold": round(float(h), 6),
                }
                for f, t, h in zip(fpr, tpr, thresholds, strict=True)
            ],
        )
        fig = figure()
        ax = fig.add_subplot()
        ax.plot(fpr, tpr, label=f"ROC (AUC = {metrics.auc(fpr, tpr):.3f})")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("ROC curve")
        ax.legend(loc="lower right")
        save_png(fig, "roc.png")

        rows = [{"actual": str(a), "predicted": str(p)} for a, p in zip(y, predicted, strict=True)]
        write_json("confusion.json", rows)
        names = [str(c) for c in model.classes_]
        matrix = metrics.confusion_matrix(y, predicted, labels=model.classes_)
        fig = figure()
        ax = fig.add_subplot()
        fig.colorbar(ax.imshow(matrix, cmap="Blues"), ax=ax)
        ax.set_xticks(range(len(names)), names)
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        ax.set_title("Confusion matrix")
        for i in range(len(names)):
            for j in range(len(names)):
                colour = "white" if matrix[i, j] > matrix.max() / 2 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour)
        save_png(fig, "confusion.png")

    return {k: float(v) for k, v in scores.items()}


if __name__ == "__main__":
    main()
