"""dvc.lock read as plain YAML 1.2, parsed once per content."""

from __future__ import annotations

from pathlib import Path

from mlopsctl.plan.state import LOCK_CACHE, read_state

LOCK = """schema: '2.0'
stages:
  churn_ingest:
    cmd: mlopsctl run-stage churn/ingest
    deps:
    - path: data/customers.csv
      hash: md5
      md5: 0123456789abcdef0123456789abcdef
      size: 10
    params:
      usecases/churn.yaml:
        data.join:
        - left: customers
          right: regions
          on: region_id
        data.split:
          cutoff: 2025-01-01
          stratify: true
    outs:
    - path: artifacts/churn/snapshot.parquet
      hash: md5
      md5: fedcba9876543210fedcba9876543210
      size: 20
"""


def test_lock_values_read_as_dvc_writes_them(tmp_path: Path) -> None:
    (tmp_path / "dvc.lock").write_text(LOCK)
    st = read_state(tmp_path).get("churn_ingest")
    assert st is not None
    params = st.params["usecases/churn.yaml"]
    assert params["data.join"] == [{"left": "customers", "right": "regions", "on": "region_id"}]
    assert params["data.split"] == {"cutoff": "2025-01-01", "stratify": True}
    assert st.deps == {"data/customers.csv": "0123456789abcdef0123456789abcdef"}
    assert st.outs == {"artifacts/churn/snapshot.parquet": "fedcba9876543210fedcba9876543210"}


def test_parsed_once_per_content(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text(LOCK)
    first = read_state(tmp_path)
    assert (tmp_path / LOCK_CACHE).exists()
    assert read_state(tmp_path).stages == first.stages  # from the JSON copy
    lock.write_text(LOCK.replace("0123456789abcdef", "aaaaaaaaaaaaaaaa", 1))
    changed = read_state(tmp_path).get("churn_ingest")
    assert changed is not None
    assert changed.deps["data/customers.csv"].startswith("aaaaaaaaaaaaaaaa")
