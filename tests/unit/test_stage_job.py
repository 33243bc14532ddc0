"""A stage job carries what its worker needs: its size does not grow with the use case."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from mlopsctl.compile.graph import compile_usecase
from mlopsctl.execute.task import StageJob, run_job
from mlopsctl.spec.model import UseCase, UseCaseFile, build


def usecase(n_custom: int) -> UseCase:
    doc: dict[str, Any] = {
        "apiVersion": "mlopsctl/v1",
        "kind": "UseCase",
        "metadata": {"name": "shop"},
        "goal": {"problem": "binary_classification", "target": "y", "metrics": {}},
        "data": {"sources": {"shop": {"format": "csv", "path": "data/shop.csv"}}},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "stages": [
            {"name": f"s{i}", "cmd": f"echo {i} > work/x_{i}.txt", "outs": [f"work/x_{i}.txt"]}
            for i in range(n_custom)
        ],
    }
    return build(UseCase, doc)


def test_a_job_does_not_carry_the_use_cases_custom_stages() -> None:
    """At 1,000 custom stages each job pickled all of them (104 KB, ~4 ms per job): quadratic."""
    sizes = {}
    for n in (2, 500):
        uc = usecase(n)
        job = StageJob("/repo", compile_usecase(UseCaseFile("usecases/shop.yaml", uc, {}))[0], uc)
        assert job.usecase.stages == ()
        assert job.usecase.model == uc.model and job.usecase.data == uc.data  # the rest stays
        sizes[n] = len(pickle.dumps(job))
    assert sizes[500] == sizes[2], sizes


def test_a_custom_stage_runs_from_a_job_without_the_definitions(tmp_path: Path) -> None:
    uc = usecase(3)
    (tmp_path / "work").mkdir()
    stages = {st.name: st for st in compile_usecase(UseCaseFile("usecases/shop.yaml", uc, {}))}
    job = pickle.loads(pickle.dumps(StageJob(str(tmp_path), stages["s1"], uc)))
    result = run_job(job)
    assert result.ok, result.message
    assert (tmp_path / "work/x_1.txt").read_text() == "1\n"
    assert list(result.outs) == ["work/x_1.txt"]
