"""Bare step 3: fit preprocessing + estimator, save the model.  train.py TRAIN MODEL"""

import joblib
import pandas as pd
from common import CATEGORICAL, NUMERIC, TARGET, args, make_pipeline

train_path, model_path = args(2)
train = pd.read_parquet(train_path, engine="pyarrow")
pipeline = make_pipeline().fit(train[NUMERIC + CATEGORICAL], train[TARGET])
joblib.dump(pipeline, model_path)
print(f"train: fitted on {len(train)} rows")
