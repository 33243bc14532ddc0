"""The committed monitoring verdict as plan and status read it (mlopsctl/plan/monitoring.py)."""

from __future__ import annotations

import json
from pathlib import Path

from mlopsctl.compile.layout import UseCasePaths
from mlopsctl.plan.monitoring import last_verdict, pending_retrain, read_breach, reasons

PATHS = UseCasePaths("churn")


def write(root: Path, rel: str, value: object) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), "utf-8")
    return path


def breach(root: Path, breached: bool = True, id_: str = "abc123") -> None:
    write(
        root,
        PATHS.monitoring_file("breach.json"),
        {"breach": breached, "id": id_, "on_breach": "retrain", "reasons": ["drift: x"]},
    )


def test_a_breach_is_pending_until_training_records_its_id(tmp_path: Path) -> None:
    assert pending_retrain(tmp_path, PATHS) is None and last_verdict(tmp_path, PATHS) is None
    breach(tmp_path)
    found = pending_retrain(tmp_path, PATHS)
    assert found is not None and found.summary == "drift: x"
    assert last_verdict(tmp_path, PATHS) == "breach"
    write(tmp_path, PATHS.training, {"monitoring_breach": "older"})
    assert pending_retrain(tmp_path, PATHS) is not None
    write(tmp_path, PATHS.training, {"monitoring_breach": "abc123"})
    assert pending_retrain(tmp_path, PATHS) is None
    breach(tmp_path, id_="next-batch")  # a new batch breaches again: pending again
    assert pending_retrain(tmp_path, PATHS) is not None


def test_a_verdict_that_held_is_no_breach(tmp_path: Path) -> None:
    breach(tmp_path, breached=False)
    assert read_breach(tmp_path, PATHS) is None
    assert last_verdict(tmp_path, PATHS) == "ok"


def test_hostile_records_count_as_absent(tmp_path: Path) -> None:
    outside = write(tmp_path / "elsewhere", "breach.json", {"breach": True, "id": "x"})
    link = tmp_path / PATHS.monitoring_file("breach.json")
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)  # never followed
    assert read_breach(tmp_path, PATHS) is None and last_verdict(tmp_path, PATHS) is None
    link.unlink()
    link.write_text("[1, 2]", "utf-8")  # not an object
    assert last_verdict(tmp_path, PATHS) is None
    link.write_text("{" + " " * (2 << 20) + "}", "utf-8")  # too large
    assert last_verdict(tmp_path, PATHS) is None
    link.write_text('{"breach": "yes", "id": 3}', "utf-8")  # wrong types
    assert read_breach(tmp_path, PATHS) is None and last_verdict(tmp_path, PATHS) is None


def test_reasons_name_each_broken_threshold() -> None:
    result = {
        "features": [
            {
                "name": "income",
                "statistic": "psi",
                "value": 1.3212,
                "threshold": 0.2,
                "drifted": True,
            },
            {"name": "age", "statistic": "psi", "value": 0.01, "threshold": 0.2, "drifted": False},
            {
                "name": "region",
                "statistic": "chisquare",
                "value": 0.001,
                "threshold": 0.05,
                "drifted": True,
            },
        ],
        "problems": ["missing column: zip"],
        "performance": {
            "roc_auc": {"value": 0.71, "min": 0.75, "holds": False},
            "f1": {"value": 0.9, "min": 0.8, "holds": True},
            "rmse": {"value": None, "max": 3.0, "holds": False},
        },
        "prediction": None,
    }
    assert reasons(result) == [
        "drift: income PSI 1.32 > 0.20",
        "drift: region CHISQUARE 0.00 < 0.05",
        "missing column: zip",
        "performance: rmse undefined on the batch",
        "performance: roc_auc 0.7100 < 0.75",
    ]
