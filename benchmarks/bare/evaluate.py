"""Bare step 4: score the model on the test set.  evaluate.py MODEL TEST METRICS"""

import json

import joblib
import pandas as pd
from common import CATEGORICAL, NUMERIC, TARGET, args
from sklearn import metrics

model_path, test_path, metrics_path = args(3)
model = joblib.load(model_path)
test = pd.read_parquet(test_path, engine="pyarrow")
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
print("evaluate: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
