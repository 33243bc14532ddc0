"""Bare step 2: stratified random split.  split.py SNAPSHOT TRAIN TEST"""

import pandas as pd
from common import SEED, TARGET, TEST_SIZE, args
from sklearn.model_selection import train_test_split

snapshot, train_path, test_path = args(3)
frame = pd.read_parquet(snapshot, engine="pyarrow")
train, test = train_test_split(
    frame, test_size=TEST_SIZE, random_state=SEED, stratify=frame[TARGET]
)
train.reset_index(drop=True).to_parquet(train_path, engine="pyarrow", index=False)
test.reset_index(drop=True).to_parquet(test_path, engine="pyarrow", index=False)
print(f"split: {len(train)} train, {len(test)} test")
