"""Bare step 1: read the CSV, write a Parquet snapshot.  ingest.py CSV SNAPSHOT"""

import pandas as pd
from common import args

csv, snapshot = args(2)
frame = pd.read_csv(csv)
frame.to_parquet(snapshot, engine="pyarrow", index=False)
print(f"ingest: {len(frame)} rows")
