"""The four bare steps in ONE process: the fair baseline for a tool that keeps its workers warm.

    one_process.py CSV OUTDIR

Same work, same files as ingest.py, split.py, train.py and evaluate.py run one after another
(Parquet snapshot, train/test Parquet files, joblib model, metrics.json), written the way one
script would: pandas and scikit-learn are imported once, and each step goes on with the frames
and the model it has in memory (every file is still written, none is read back).
"""

import json
import sys
from pathlib import Path

import joblib
import pandas as pd
from common import CATEGORICAL, NUMERIC, SEED, TARGET, TEST_SIZE, make_pipeline
from sklearn import metrics
from sklearn.model_selection import train_test_split

if len(sys.argv) != 3:
    sys.exit("usage: one_process.py CSV OUTDIR")
csv, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
snapshot, train_path, test_path = (out / f"{n}.parquet" for n in ("snapshot", "train", "test"))
model_path, metrics_path = out / "model.joblib", out / "metrics.json"

# 1. ingest
frame = pd.read_csv(csv)
frame.to_parquet(snapshot, engine="pyarrow", index=False)

# 2. split
train, test = train_test_split(
    frame, test_size=TEST_SIZE, random_state=SEED, stratify=frame[TARGET]
)
train, test = train.reset_index(drop=True), test.reset_index(drop=True)
train.to_parquet(train_path, engine="pyarrow", index=False)
test.to_parquet(test_path, engine="pyarrow", index=False)

# 3. train
pipeline = make_pipeline().fit(train[NUMERIC + CATEGORICAL], train[TARGET])
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
print("one process: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
