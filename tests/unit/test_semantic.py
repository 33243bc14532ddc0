"""Semantic checks: what the JSON Schema cannot say (cross-references, paths, directions)."""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlopsctl.errors import Diagnostic
from mlopsctl.spec.loader import load_usecases
from mlopsctl.spec.model import ERROR_METRICS, METRICS, ProjectConfig, UseCase, build
from mlopsctl.spec.semantic import (
    SCORERS,
    ProjectContext,
    check_usecase,
    path_problem,
    unique_names,
)
from mlopsctl.spec.yamlio import load_yaml

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "spec_example"
CHURN = (FIXTURE / "usecases" / "churn.yaml").read_text("utf-8")
HOUSES = (ROOT / "examples" / "house-prices" / "usecases" / "house-prices.yaml").read_text("utf-8")


def edit(text: str, *edits: tuple[str, str]) -> str:
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} is not unique"
        text = text.replace(old, new)
    return text


def diagnose(
    text: str,
    tmp_path: Path,
    root: Path = FIXTURE,
    allowed: tuple[str, ...] = ("sklearn",),
) -> list[Diagnostic]:
    """Every diagnostic of *text* as a use case of the project at *root* (read only)."""
    target = tmp_path / "uc.yaml"
    target.write_text(text, "utf-8")
    config = ProjectConfig(
        api_version="mlopsctl/v1", kind="Project", allowed_estimator_modules=allowed
    )
    _ucs, diags = load_usecases(root, [target], config)
    return diags


def messages(diags: list[Diagnostic]) -> list[tuple[str, str]]:
    return [(d.path, d.message) for d in diags]


def semantic_only(data: dict[str, Any], root: Path = FIXTURE) -> list[Diagnostic]:
    """check_usecase on a document that skips the schema (for checks the schema shadows)."""
    doc, _ = load_yaml(yaml.safe_dump(data, sort_keys=False), "uc.yaml")
    return check_usecase(build(UseCase, data), doc, ProjectContext(root))


# --- the tables the checks rely on -----------------------------------------------------------


def test_scorers_are_the_installed_scikit_learn_scorers() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    assert set(SCORERS) == set(sklearn_metrics.get_scorer_names())


def test_metric_tables_match_the_schema() -> None:
    schema = json.loads((ROOT / "mlopsctl" / "schemas" / "usecase.schema.json").read_text())
    per_problem = {}
    for rule in schema["allOf"]:
        problem = rule["if"]["properties"]["goal"]["properties"]["problem"]["const"]
        goal = rule["then"]["properties"]["goal"]["properties"]
        per_problem[problem] = tuple(goal["metrics"]["propertyNames"]["enum"])
        assert goal["primary_metric"]["enum"] == list(per_problem[problem])
    assert per_problem == METRICS
    every = {m for names in METRICS.values() for m in names}
    assert set(schema["$defs"]["metricName"]["enum"]) == every
    assert every >= ERROR_METRICS


# --- the valid documents ---------------------------------------------------------------------


def test_the_spec_example_and_the_examples_have_no_findings(tmp_path: Path) -> None:
    assert diagnose(CHURN, tmp_path) == []
    assert diagnose(HOUSES, tmp_path, root=ROOT / "examples" / "house-prices") == []


# --- goal --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bound", "finding"),
    [
        ("rmse: {max: 90.0}", None),
        ("rmse: {min: 1.0, max: 90.0}", None),
        ("rmse: {min: 1.0}", ("goal.metrics.rmse.min", "rmse is an error")),
        ("rmse: {min: 95.0, max: 90.0}", ("goal.metrics.rmse", "min 95 is greater than max 90")),
        ("mae: {max: 90.0}", None),
        ("mape: {min: 0.1}", ("goal.metrics.mape.min", "mape is an error")),
    ],
)
def test_metric_directions(bound: str, finding: tuple[str, str] | None, tmp_path: Path) -> None:
    text = edit(HOUSES, ("rmse: {max: 90.0}", bound))
    diags = diagnose(text, tmp_path, root=ROOT / "examples" / "house-prices")
    if finding is None:
        assert diags == []
    else:
        assert len(diags) == 1, diags
        assert diags[0].path == finding[0] and diags[0].message.startswith(finding[1])


@pytest.mark.parametrize(
    ("bound", "finding"),
    [
        ("{min: 0.6}", None),
        ("{min: 0.6, max: 0.99}", None),
        ("{max: 0.6}", "r2 is a score (higher is better): bound it with min, not max"),
    ],
)
def test_score_directions(bound: str, finding: str | None, tmp_path: Path) -> None:
    text = edit(HOUSES, ("r2: {min: 0.6}", f"r2: {bound}"))
    diags = diagnose(text, tmp_path, root=ROOT / "examples" / "house-prices")
    assert [d.message for d in diags] == ([finding] if finding else [])


def test_monitoring_performance_direction(tmp_path: Path) -> None:
    text = edit(CHURN, ("performance: {roc_auc: {min: 0.75}}", "performance: {log_loss: {min: 1}}"))
    assert messages(diagnose(text, tmp_path)) == [
        (
            "monitoring.performance.log_loss.min",
            "log_loss is an error (lower is better): bound it with max, not min",
        )
    ]


def test_primary_metric_must_be_a_gate_metric(tmp_path: Path) -> None:
    text = edit(CHURN, ("primary_metric: roc_auc", "primary_metric: recall"))
    (d,) = diagnose(text, tmp_path)
    assert (d.path, d.line, d.column) == ("goal.primary_metric", 17, 19)
    assert d.hint == "expected one of: roc_auc, f1"


# --- data --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "path", "message"),
    [
        (
            "numeric: [age,",
            "numeric: [churned, age,",
            "data.features.numeric[0]",
            "the target 'churned' cannot also be a feature",
        ),
        (
            "categorical: [contract,",
            "categorical: [churned, contract,",
            "data.features.categorical[0]",
            "the target 'churned' cannot also be a feature",
        ),
        (
            "drop: [customer_id]",
            "drop: [customer_id, churned]",
            "data.features.drop[1]",
            "the target 'churned' cannot be dropped",
        ),
        (
            "categorical: [contract,",
            "categorical: [age, contract,",
            "data.features.categorical[0]",
            "column 'age' is listed in both numeric and categorical",
        ),
        (
            "drop: [customer_id]",
            "drop: [customer_id, contract]",
            "data.features.drop[1]",
            "column 'contract' is listed in both categorical and drop",
        ),
    ],
)
def test_feature_lists(old: str, new: str, path: str, message: str, tmp_path: Path) -> None:
    assert messages(diagnose(edit(CHURN, (old, new)), tmp_path)) == [(path, message)]


def test_join_refers_to_known_sources(tmp_path: Path) -> None:
    text = edit(CHURN, ("{left: customers, right: regions,", "{left: customer, right: regions,"))
    (d,) = [d for d in diagnose(text, tmp_path) if d.path == "data.join[0].left"]
    assert d.message == "unknown source 'customer'"
    assert d.hint == "did you mean 'customers'?"


def test_several_sources_need_a_join(tmp_path: Path) -> None:
    text = edit(
        CHURN, ("  join:\n    - {left: customers, right: regions, on: region_id, how: left}", "")
    )
    assert messages(diagnose(text, tmp_path)) == [
        ("data.sources", "2 sources but no data.join to combine them")
    ]


def test_every_source_must_be_joined(tmp_path: Path) -> None:
    text = edit(
        CHURN,
        (
            "    # loans:",
            "    more: {format: parquet, path: data/regions.parquet}\n    # loans:",
        ),
    )
    assert messages(diagnose(text, tmp_path)) == [
        ("data.join", "sources not combined by any join: more")
    ]


def test_range_min_above_max(tmp_path: Path) -> None:
    text = edit(CHURN, ("ranges: {age: {min: 18, max: 120}}", "ranges: {age: {min: 120, max: 18}}"))
    assert messages(diagnose(text, tmp_path)) == [
        ("data.checks.ranges.age", "min 120 is greater than max 18")
    ]


def test_stratified_regression_is_caught_without_the_schema_too() -> None:
    data, _ = load_yaml(HOUSES, "h.yaml")
    data.data["data"]["split"]["stratify"] = True
    diags = semantic_only(data.data, root=ROOT / "examples" / "house-prices")
    assert messages(diags) == [
        ("data.split.stratify", "stratify needs a classification problem, not regression")
    ]


# --- model ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("estimator", "allowed", "ok"),
    [
        ("sklearn.linear_model.LogisticRegression", ("sklearn",), True),
        ("sklearn.LogisticRegression", ("sklearn",), True),
        ("xgboost.XGBClassifier", ("sklearn",), False),
        ("xgboost.XGBClassifier", ("sklearn", "xgboost"), True),
        ("sklearnx.Evil", ("sklearn",), False),  # a prefix of the name is not the module
        ("os.system", ("sklearn",), False),
        ("sklearn.ensemble.X", ("sklearn.linear_model",), False),
        ("sklearn.linear_model.Ridge", ("sklearn.linear_model",), True),
    ],
)
def test_estimator_modules(
    estimator: str, allowed: tuple[str, ...], ok: bool, tmp_path: Path
) -> None:
    text = edit(CHURN, ("sklearn.ensemble.HistGradientBoostingClassifier", estimator))
    diags = diagnose(text, tmp_path, allowed=allowed)
    if ok:
        assert diags == []
    else:
        module = estimator.rsplit(".", 1)[0]
        assert messages(diags) == [
            ("model.estimator", f"estimator module '{module}' is not allowed")
        ]


@pytest.mark.parametrize("scorer", ["roc_auc", "neg_log_loss", "f1_macro", "average_precision"])
def test_known_scorers_pass(scorer: str, tmp_path: Path) -> None:
    assert diagnose(edit(CHURN, ("scoring: roc_auc", f"scoring: {scorer}")), tmp_path) == []


def test_unknown_scorer(tmp_path: Path) -> None:
    (d,) = diagnose(edit(CHURN, ("scoring: roc_auc", "scoring: rmse")), tmp_path)
    assert (d.path, d.message) == ("model.tuning.scoring", "unknown scikit-learn scorer 'rmse'")


# --- custom stages -----------------------------------------------------------------------------

SECOND_STAGE = "\n  - name: report\n    cmd: echo\n    before: featurize"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("before: ingest", "before: ingest" + SECOND_STAGE, []),
        ("before: ingest", "before: gate", []),
        (
            "before: ingest",
            "before: featurize",
            [("stages[0].before", "unknown stage 'featurize'")],
        ),
        (
            "- name: featurize",
            "- name: train",
            [("stages[0].name", "'train' is the name of a built-in stage")],
        ),
        (
            "before: ingest",
            "before: deploy",
            [("stages[0].before", "unknown stage 'deploy'")],
        ),
    ],
)
def test_custom_stages(old: str, new: str, expected: list[tuple[str, str]], tmp_path: Path) -> None:
    assert messages(diagnose(edit(CHURN, (old, new)), tmp_path)) == expected


# --- paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("data/x.csv", ""),
        ("a/../b.csv", ""),
        ("./x.csv", ""),
        ("..", "leaves the repository"),
        ("../x.csv", "leaves the repository"),
        ("a/../../x.csv", "leaves the repository"),
        ("/etc/passwd", "must be relative to the repository"),
        ("\\\\server\\share", "must be relative to the repository"),
        ("C:\\data\\x.csv", "must be relative to the repository"),
        ("s3://bucket/x.csv", "must be a file in the repository, not a URL"),
        ("data/x\x00.csv", "contains a control character"),
    ],
)
def test_path_problem(value: str, problem: str) -> None:
    found = path_problem(value)
    assert (problem in found) if problem else found == "", found


def test_data_paths_are_found_on_disk_dvc_or_stage_outputs(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "data" / "customers.csv").write_text("a\n1\n")
    (root / "data" / "regions.parquet.dvc").write_text("outs: []\n")  # tracked, not pulled
    (root / "data" / "current.csv.dvc").write_text("outs: []\n")
    assert diagnose(CHURN, tmp_path, root=root) == []
    # produced by a custom stage: fine even though it is not there yet
    text = edit(CHURN, ("path: data/current.csv}", "path: data/features.csv}"))
    assert diagnose(text, tmp_path, root=root) == []
    text = edit(CHURN, ("outs: [data/features.csv]", "outs: [data/gen]"))
    text = edit(text, ("path: data/current.csv}", "path: data/gen/part-0.csv}"))
    assert diagnose(text, tmp_path, root=root) == []
    (root / "data" / "current.csv.dvc").unlink()
    (d,) = diagnose(CHURN, tmp_path, root=root)
    assert (d.path, d.message) == (
        "monitoring.current.path",
        "data file 'data/current.csv' not found",
    )
    assert (d.line, d.column) == (59, 32)


def test_stage_paths_are_checked(tmp_path: Path) -> None:
    text = edit(CHURN, ("outs: [data/features.csv]", "outs: [../features.csv]"))
    assert messages(diagnose(text, tmp_path)) == [
        ("stages[0].outs[0]", "path '../features.csv' leaves the repository")
    ]


def test_batch_output_path_is_checked(tmp_path: Path) -> None:
    text = edit(
        CHURN,
        ("  target: rest ", "  target: batch "),
        (
            "  # batch: {input:",
            "  batch: {input: {format: csv, path: data/current.csv}, output: /tmp/p.csv}\n  #",
        ),
    )
    assert messages(diagnose(text, tmp_path)) == [
        ("deploy.batch.output", "path '/tmp/p.csv' must be relative to the repository")
    ]


# --- interpolation and names ---------------------------------------------------------------------


def test_interpolation_anywhere(tmp_path: Path) -> None:
    text = edit(
        CHURN,
        ("labels: {domain: retail, risk: high}", "labels: {domain: '${env:D}', risk: '${D}'}"),
        (
            "  - name: featurize\n    cmd: python src/featurize.py",
            "  - name: featurize\n    cmd: ${x}",
        ),
    )
    assert messages(diagnose(text, tmp_path)) == [
        ("metadata.labels.risk", "bad interpolation '${D}'"),
        ("stages[0].cmd", "bad interpolation '${x}'"),
    ]


def test_env_interpolation_in_a_sql_url_is_fine(tmp_path: Path) -> None:
    text = edit(
        CHURN,
        ("    # loans:   {format: sql", "    loans:   {format: sql"),
        ("how: left}", "how: left}\n    - {left: customers, right: loans, on: id}"),
    )
    assert diagnose(text, tmp_path) == []


def test_use_case_names_are_unique() -> None:
    a, _ = load_yaml("metadata: {name: churn}\n", "usecases/a.yaml")
    b, _ = load_yaml("# b\nmetadata: {name: churn}\n", "usecases/b.yaml")
    (d,) = unique_names([("churn", a), ("churn", b)])
    assert (d.file, d.line, d.column, d.path) == ("usecases/b.yaml", 2, 18, "metadata.name")
    assert d.message == "use case 'churn' is already defined in usecases/a.yaml"


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(CHURN, "utf-8")
    ucs, diags = load_usecases(FIXTURE, [tmp_path / "a.yaml", tmp_path / "b.yaml"], None)
    assert len(ucs) == 2
    assert [d.message for d in diags] == [
        f"output 'data/features.csv' is also the output 'data/features.csv' of "
        f"{tmp_path / 'a.yaml'}: stages[0].outs[0]",
        f"use case 'churn' is already defined in {tmp_path / 'a.yaml'}",
    ]


# --- project defaults --------------------------------------------------------------------------


def test_infra_left_out_comes_from_the_project_defaults(tmp_path: Path) -> None:
    """`executor: dask` in a use case is complete when the project's defaults name the cluster."""
    text = edit(CHURN, ("  executor: local", "  executor: dask"))
    target = tmp_path / "uc.yaml"
    target.write_text(text, "utf-8")
    with_cluster = build(
        ProjectConfig,
        {
            "apiVersion": "mlopsctl/v1",
            "kind": "Project",
            "defaults": {
                "infra": {
                    "executor": "local",
                    "dask": {"scheduler": "tcp://s:8786", "storage": "s3://b/staging"},
                }
            },
        },
    )
    (uc,), diags = load_usecases(FIXTURE, [target], with_cluster)
    assert diags == []
    assert uc.spec.infra.executor == "dask"
    assert uc.spec.infra.dask is not None and uc.spec.infra.dask.scheduler == "tcp://s:8786"
    assert uc.spec.infra.dask.storage == "s3://b/staging"
    assert uc.spec.infra.n_jobs == 2  # the use case's own value wins
    # without a cluster in the defaults, the use case lacks its dask block
    _ucs, diags = load_usecases(FIXTURE, [target], None)
    assert messages(diags) == [
        ("infra", "missing required key 'dask' (required when executor is dask)")
    ]
    assert (diags[0].line, diags[0].column) == (48, 3)


# --- outputs: the spec layer's copy of the built-in layout ------------------------------------


@pytest.mark.parametrize("example", ["breast-cancer", "house-prices"])
def test_every_builtin_output_is_reserved(example: str, tmp_path: Path) -> None:
    """semantic.BUILTIN_OUTPUTS mirrors compile/layout.py: every output a built-in stage of a
    compiled use case writes is refused as a custom stage's output."""
    from mlopsctl.compile.graph import compile_usecase
    from mlopsctl.spec.loader import load_project
    from mlopsctl.spec.semantic import output_problem

    project = load_project(ROOT / "examples" / example)
    (ucf,) = project.usecases
    ctx = ProjectContext(project.root, usecase_names=frozenset({ucf.spec.name}))
    builtin = [o for st in compile_usecase(ucf) if st.kind != "custom" for o in st.all_outs]
    assert builtin
    for out in builtin:
        assert "an output of use case" in output_problem(out, ucf.spec, ctx), out


def test_an_output_may_produce_a_source_but_not_one_dvc_tracks(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "data" / "customers.csv").write_text("a\n1\n")
    (root / "data" / "regions.parquet.dvc").write_text("outs: []\n")
    (root / "data" / "current.csv.dvc").write_text("outs: []\n")
    # the stage produces the source it feeds to ingest: the documented `before: ingest` pattern
    text = edit(CHURN, ("path: data/current.csv}", "path: data/features.csv}"))
    assert diagnose(text, tmp_path, root=root) == []
    # but a source that a .dvc file tracks on its own would be deleted by the stage
    text = edit(CHURN, ("outs: [data/features.csv]", "outs: [data/regions.parquet]"))
    assert messages(diagnose(text, tmp_path, root=root)) == [
        (
            "stages[0].outs[0]",
            "output 'data/regions.parquet' overlaps the data source data/regions.parquet "
            "(data.sources.regions), which data/regions.parquet.dvc tracks",
        )
    ]


def test_overlapping_outputs_reports_the_first_earlier_clash_like_a_pairwise_scan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The linear scan (1,000 stages made the pairwise one most of a plan) names, for every
    output, the same earlier output a pairwise scan in declaration order finds first."""
    import random
    from types import SimpleNamespace

    from mlopsctl.spec import semantic

    def pairwise(values: list[str]) -> list[str]:
        seen: list[str] = []
        out = []
        for v in values:
            norm = posixpath.normpath(v)
            hit = next((s for s in seen if semantic._overlap(norm, s)), None)
            if hit is not None:
                out.append(f"{v} -> {hit}")
            seen.append(norm)
        return out

    rng = random.Random(7)
    parts = ["a", "b", "ab", "c"]
    for _ in range(300):
        values = [
            "/".join(rng.choice(parts) for _ in range(rng.randint(1, 3)))
            + rng.choice(["", "/", "/."])
            for _ in range(rng.randint(1, 12))
        ]
        docs = SimpleNamespace(file="u.yaml", diagnostic=lambda p, m: SimpleNamespace(message=m))
        outs = [(("stages", i, "outs", 0), v) for i, v in enumerate(values)]
        monkeypatch.setattr(semantic, "_declared_outputs", lambda _uc, outs=outs: outs)
        got = semantic.overlapping_outputs([(SimpleNamespace(), docs)])  # type: ignore[list-item]
        found = [
            f"{d.message.split(chr(39))[1]} -> {posixpath.normpath(d.message.split(chr(39))[3])}"
            for d in got
        ]
        assert found == pairwise(values), values
