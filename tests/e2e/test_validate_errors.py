"""`mlopsctl validate` on broken use cases: every mistake is reported at its exact line:col.

Each case writes a small mistake into a copy of a valid project (the annotated SPEC example or a
shipped example), runs the installed CLI in a subprocess, and checks the exit code, the
``file:line:col: key.path: message`` line (line and column computed from the text written) and
that no traceback leaks out.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

Cli = Callable[..., "subprocess.CompletedProcess[str]"]
ROOT = Path(__file__).resolve().parents[2]
BASES = {
    "churn": ROOT / "tests" / "fixtures" / "spec_example",
    "breast-cancer": ROOT / "examples" / "breast-cancer",
    "house-prices": ROOT / "examples" / "house-prices",
}
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if (p / "mlopsctl.yaml").is_file())


@dataclass(frozen=True)
class Case:
    """A mistake: edits to a base use case, and the diagnostic expected for it.

    ``at`` is ``(needle, token)``: the diagnostic points at the first ``token`` at or after the
    (unique) ``needle`` in the edited text; or an explicit ``(line, column)``.
    """

    id: str
    path: str
    message: str
    at: tuple[str, str] | tuple[int, int]
    edits: tuple[tuple[str, str], ...] = ()
    text: str | None = None  # replaces the whole file
    base: str = "churn"


CASES = [
    Case(
        "typo-key-did-you-mean",
        "goal.primary_metrc",
        "unknown key 'primary_metrc' (did you mean 'primary_metric'?)",
        ("primary_metrc:", "primary_metrc"),
        (("  primary_metric: roc_auc", "  primary_metrc: roc_auc"),),
    ),
    Case(
        "unknown-top-level-key",
        "extras",
        "unknown key 'extras'",
        ("extras: 1", "extras"),
        (("stages:  ", "extras: 1\nstages:  "),),
    ),
    Case(
        "typo-key-in-flow-mapping",
        "deploy.rest.prot",
        "unknown key 'prot' (did you mean 'port'?)",
        ("prot: 8080", "prot"),
        (("port: 8080", "prot: 8080"),),
    ),
    Case(
        "wrong-type",
        "data.checks.min_rows",
        "expected an integer, got a string",
        ("min_rows: many", "many"),
        (("    min_rows: 500", "    min_rows: many"),),
    ),
    Case(
        "wrong-type-list-for-mapping",
        "model.params",
        "expected a mapping, got a list",
        ("params: [1, 2]", "["),
        (("params: {max_iter: 200, learning_rate: 0.1, random_state: 42}", "params: [1, 2]"),),
    ),
    Case(
        "test-size-out-of-range",
        "data.split.test_size",
        "must be < 1, got 1.5",
        ("test_size: 1.5", "1.5"),
        (("test_size: 0.2", "test_size: 1.5"),),
    ),
    Case(
        "port-out-of-range",
        "deploy.rest.port",
        "must be <= 65535, got 70000",
        ("port: 70000", "70000"),
        (("port: 8080", "port: 70000"),),
    ),
    Case(
        "unknown-metric",
        "goal.metrics.f1score",
        "'f1score' is not valid when goal.problem is binary_classification; expected one of: "
        "roc_auc, accuracy, f1, precision, recall, log_loss",
        ("f1score:", "f1score"),
        (("    f1: {min: 0.60}", "    f1score: {min: 0.60}"),),
    ),
    Case(
        "metric-not-for-the-problem",
        "goal.metrics.rmse",
        "'rmse' is not valid when goal.problem is binary_classification",
        ("    rmse: {max", "rmse"),
        (("    f1: {min: 0.60}", "    rmse: {max: 0.60}"),),
    ),
    Case(
        "missing-target",
        "goal",
        "missing required key 'target'",
        ("problem: binary_classification", "problem"),
        (("  target: churned                  # label column\n", ""),),
    ),
    Case(
        "bad-name-pattern",
        "metadata.name",
        "'Churn_1' does not match the pattern ^[a-z][a-z0-9-]{0,62}$",
        ("name: Churn_1", "Churn_1"),
        (("name: churn ", "name: Churn_1 "),),
    ),
    Case(
        "path-leaves-the-repo",
        "data.sources.customers.path",
        "path '../x.csv' leaves the repository",
        ("../x.csv", "../x.csv"),
        (("path: data/customers.csv}", "path: ../x.csv}"),),
    ),
    Case(
        "absolute-path",
        "data.sources.customers.path",
        "path '/srv/x.csv' must be relative to the repository",
        ("/srv/x.csv", "/srv/x.csv"),
        (("path: data/customers.csv}", "path: /srv/x.csv}"),),
    ),
    Case(
        "data-file-not-found",
        "data.sources.customers.path",
        "data file 'data/nope.csv' not found",
        ("data/nope.csv", "data/nope.csv"),
        (("path: data/customers.csv}", "path: data/nope.csv}"),),
    ),
    Case(
        "yaml-syntax-error",
        "",
        "YAML syntax error: mapping values are not allowed",
        ("Cut churn: by", ": by"),
        (("  objective: Cut churn by 10%", "  objective: Cut churn: by 10%"),),
    ),
    Case(
        "python-tag",
        "metadata.description",
        "YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed",
        ("!!python", "!!python"),
        (
            (
                "  description: Predict churn to target retention offers.",
                '  description: !!python/object/apply:os.system ["touch {marker}"]',
            ),
        ),
    ),
    Case(
        "duplicate-key",
        "goal.target",
        "duplicate key 'target'",
        ("target: other", "target"),
        (("  primary_metric: roc_auc", "  primary_metric: roc_auc\n  target: other"),),
    ),
    Case("empty-file", "", "file is empty; expected a mapping", (1, 1), text=""),
    Case(
        "comments-only-file",
        "",
        "file is empty; expected a mapping",
        (1, 1),
        text="# nothing here yet\n",
    ),
    Case(
        "top-level-list",
        "",
        "expected a mapping at the top level, got a list",
        (2, 1),
        text="# a list\n- apiVersion: mlopsctl/v1\n- kind: UseCase\n",
    ),
    Case(
        "wrong-api-version",
        "apiVersion",
        "expected 'mlopsctl/v1', got 'mlopsctl/v2'",
        ("apiVersion: ", "mlopsctl/v2"),
        (("apiVersion: mlopsctl/v1", "apiVersion: mlopsctl/v2"),),
    ),
    Case(
        "wrong-kind",
        "kind",
        "expected 'UseCase', got 'Usecase'",
        ("kind: ", "Usecase"),
        (("kind: UseCase", "kind: Usecase"),),
    ),
    Case(
        "dask-without-dask-block",
        "infra",
        "missing required key 'dask' (required when executor is dask)",
        ("  executor: dask", "executor"),
        (("  executor: local", "  executor: dask"),),
    ),
    Case(
        "dask-without-scheduler",
        "infra.dask",
        "missing required key 'scheduler'",
        ("dask: {n_workers", "{"),
        (
            ("  executor: local", "  executor: dask"),
            ("  # dask: {scheduler", "  dask: {n_workers: 2}\n  # dask: {scheduler"),
        ),
    ),
    Case(
        "batch-target-without-batch",
        "deploy",
        "missing required key 'batch' (required when target is batch)",
        ("target: batch ", "target"),
        (("  target: rest ", "  target: batch "),),
    ),
    Case(
        "time-split-without-column",
        "data.split",
        "missing required key 'column' (required when method is time)",
        ("split: {method: time", "{"),
        (
            (
                "split: {method: random, test_size: 0.2, stratify: true, seed: 42}",
                'split: {method: time, cutoff: "2025-01-01"}',
            ),
        ),
    ),
    Case(
        "time-split-with-test-size",
        "data.split.test_size",
        "key not allowed here",
        ("split: {method: time", "test_size"),
        (
            (
                "split: {method: random, test_size: 0.2, stratify: true, seed: 42}",
                'split: {method: time, column: signup, cutoff: "2025-01-01", test_size: 0.2}',
            ),
        ),
    ),
    Case(
        "error-metric-bounded-with-min",
        "goal.metrics.rmse.min",
        "rmse is an error (lower is better): bound it with max, not min",
        ("rmse: {min", "min"),
        (("rmse: {max: 90.0}", "rmse: {min: 90.0}"),),
        base="house-prices",
    ),
    Case(
        "score-metric-bounded-with-max",
        "goal.metrics.r2.max",
        "r2 is a score (higher is better): bound it with min, not max",
        ("r2: {max", "max"),
        (("r2: {min: 0.6}", "r2: {max: 0.6}"),),
        base="house-prices",
    ),
    Case(
        "stratified-regression",
        "data.split.stratify",
        "expected false, got true (Only a classification split can be stratified.)",
        ("stratify: true", "true"),
        (("split: {method: random, test_size: 0.2", "split: {method: random, stratify: true"),),
        base="house-prices",
    ),
    Case(
        "target-listed-as-feature",
        "data.features.numeric[1]",
        "the target 'churned' cannot also be a feature",
        ("numeric: [age, churned", "churned"),
        (("numeric: [age, tenure_months", "numeric: [age, churned, tenure_months"),),
    ),
    Case(
        "feature-in-numeric-and-drop",
        "data.features.drop[1]",
        "column 'age' is listed in both numeric and drop",
        ("drop: [customer_id, age]", "age"),
        (("drop: [customer_id]", "drop: [customer_id, age]"),),
    ),
    Case(
        "join-unknown-source",
        "data.join[0].right",
        "unknown source 'regionz' (did you mean 'regions'?)",
        ("right: regionz", "regionz"),
        (("right: regions", "right: regionz"),),
    ),
    Case(
        "duplicate-custom-stage",
        "stages[1].name",
        "duplicate stage name 'featurize' (first at stages[0])",
        ("  - name: featurize\n    cmd: echo", "featurize"),
        (("    before: ingest", "    before: ingest\n  - name: featurize\n    cmd: echo hi"),),
    ),
    Case(
        "before-unknown-stage",
        "stages[0].before",
        "unknown stage 'ingets' (did you mean 'ingest'?)",
        ("before: ingets", "ingets"),
        (("before: ingest", "before: ingets"),),
    ),
    Case(
        "bad-interpolation",
        "metadata.description",
        "bad interpolation '${env:1BAD}'",
        ("description: ", "Predict"),
        (("Predict churn to target retention offers.", "Predict churn for ${env:1BAD}."),),
    ),
    Case(
        "bad-interpolation-not-env",
        "monitoring.current.path",
        "bad interpolation '${HOME}'",
        ("current: {", '"${HOME}'),
        (("path: data/current.csv}", 'path: "${HOME}/current.csv"}'),),
    ),
    Case(
        "estimator-module-not-allowed",
        "model.estimator",
        "estimator module 'xgboost' is not allowed",
        ("estimator: ", "xgboost"),
        (("sklearn.ensemble.HistGradientBoostingClassifier", "xgboost.XGBClassifier"),),
    ),
    Case(
        "unknown-tuning-scorer",
        "model.tuning.scoring",
        "unknown scikit-learn scorer 'rocauc' (did you mean 'roc_auc'?)",
        ("scoring: rocauc", "rocauc"),
        (("scoring: roc_auc", "scoring: rocauc"),),
    ),
    Case(
        "primary-metric-not-among-metrics",
        "goal.primary_metric",
        "primary metric 'accuracy' is not one of goal.metrics",
        ("primary_metric: accuracy", "accuracy"),
        (("  primary_metric: roc_auc", "  primary_metric: accuracy"),),
    ),
    Case(
        "sql-source-with-path",
        "data.sources.loans.path",
        "key not allowed here",
        ("loans: {", "path"),
        (
            (
                "    # loans:   {format: sql",
                '    loans: {format: sql, path: x.csv, url: "${env:DB}", query: "SELECT 1"}\n'
                "    # loans:   {format: sql",
            ),
            (
                "right: regions, on: region_id, how: left}",
                "right: regions, on: region_id}\n    - {left: customers, right: loans, on: id}",
            ),
        ),
    ),
]


def _out(case_id: str, out: str, message: str) -> Case:
    """A custom stage output that apply must never be allowed to remove or replace."""
    return Case(
        case_id,
        "stages[0].outs[0]",
        message,
        (f"outs: [{out}]", out),
        (("outs: [data/features.csv]", f"outs: [{out}]"),),
    )


# Outputs that would delete the repository, git's or DVC's data, mlopsctl's own files or another
# stage's outputs (SPEC §1). `outs: [.]` once deleted the whole repository at apply.
OUTPUT_CASES = [
    _out("out-is-the-repository", ".", "output '.' is the whole repository"),
    _out("out-is-the-repository-slash", "./", "output './' is the whole repository"),
    _out(
        "out-inside-git", ".git/hooks", "output '.git/hooks' is inside .git/, which belongs to git"
    ),
    _out("out-is-git", ".git", "output '.git' is inside .git/, which belongs to git"),
    _out(
        "out-inside-dvc", ".dvc/cache", "output '.dvc/cache' is inside .dvc/, which belongs to DVC"
    ),
    _out(
        "out-dvc-yaml", "dvc.yaml", "output 'dvc.yaml' is dvc.yaml, which mlopsctl and DVC manage"
    ),
    _out(
        "out-dvc-lock", "dvc.lock", "output 'dvc.lock' is dvc.lock, which mlopsctl and DVC manage"
    ),
    _out(
        "out-project-file",
        "./mlopsctl.yaml",
        "output './mlopsctl.yaml' is mlopsctl.yaml, which mlopsctl and DVC manage",
    ),
    _out(
        "out-usecase-file",
        "usecases/churn.yaml",
        "output 'usecases/churn.yaml' overlaps the use-case file usecases/churn.yaml",
    ),
    _out(
        "out-usecase-folder",
        "usecases",
        "output 'usecases' overlaps the use-case file usecases/churn.yaml",
    ),
    _out(
        "out-inside-usecase-folder",
        "usecases/gen.csv",
        "output 'usecases/gen.csv' overlaps the use-case folder usecases/",
    ),
    _out(
        "out-artifacts-folder",
        "artifacts",
        "output 'artifacts' overlaps artifacts/churn/snapshot.parquet, an output of use case churn",
    ),
    _out(
        "out-usecase-artifacts",
        "artifacts/churn",
        "output 'artifacts/churn' overlaps artifacts/churn/snapshot.parquet, an output of use "
        "case churn",
    ),
    _out(
        "out-builtin-model",
        "artifacts/churn/model.skops",
        "output 'artifacts/churn/model.skops' overlaps artifacts/churn/model.skops, an output of "
        "use case churn",
    ),
    _out(
        "out-reports-folder",
        "reports",
        "output 'reports' overlaps reports/churn, an output of use case churn",
    ),
    _out(
        "out-inside-reports",
        "reports/churn/metrics.json",
        "output 'reports/churn/metrics.json' overlaps reports/churn, an output of use case churn",
    ),
    _out(
        "out-dvc-file",
        "data/regions.parquet.dvc",
        "output 'data/regions.parquet.dvc' is a DVC tracking file",
    ),
    Case(
        "out-overlaps-another-out-of-the-stage",
        "stages[0].outs[1]",
        "output 'data/features.csv/part' overlaps the output 'data/features.csv' of "
        "usecases/churn.yaml: stages[0].outs[0]",
        ("data/features.csv/part", "data/features.csv/part"),
        (("outs: [data/features.csv]", "outs: [data/features.csv, data/features.csv/part]"),),
    ),
    Case(
        "out-is-another-stages-out",
        "stages[1].metrics[0]",
        "output 'data/features.csv' is also the output 'data/features.csv' of "
        "usecases/churn.yaml: stages[0].outs[0]",
        ("metrics: [data/features.csv]", "data/features.csv"),
        (
            (
                "    before: ingest",
                "    before: ingest\n  - name: other\n    cmd: echo\n"
                "    metrics: [data/features.csv]",
            ),
        ),
    ),
    Case(
        "batch-output-is-the-lock",
        "deploy.batch.output",
        "output 'dvc.lock' is dvc.lock, which mlopsctl and DVC manage",
        ("output: dvc.lock", "dvc.lock"),
        (
            ("  target: rest ", "  target: batch "),
            (
                "  # batch: {input:",
                "  batch: {input: {format: csv, path: data/current.csv}, output: dvc.lock}\n  #",
            ),
        ),
    ),
    Case(
        "batch-output-is-a-stage-out",
        "stages[0].outs[0]",
        "output 'artifacts/churn/p.csv' is also the output 'artifacts/churn/p.csv' of "
        "usecases/churn.yaml: deploy.batch.output",
        ("outs: [artifacts/churn/p.csv]", "artifacts/churn/p.csv"),
        (
            ("  target: rest ", "  target: batch "),
            (
                "  # batch: {input:",
                "  batch: {input: {format: csv, path: data/current.csv}, "
                "output: artifacts/churn/p.csv}\n  #",
            ),
            ("outs: [data/features.csv]", "outs: [artifacts/churn/p.csv]"),
        ),
    ),
]
CASES.extend(OUTPUT_CASES)


def usecase_file(base: str) -> str:
    return f"usecases/{base}.yaml"


def location(text: str, at: tuple[str, str] | tuple[int, int]) -> tuple[int, int]:
    """1-based (line, column) of *at* in *text* (see :class:`Case`)."""
    needle, token = at
    if isinstance(needle, int) and isinstance(token, int):
        return needle, token
    assert isinstance(needle, str) and isinstance(token, str)
    assert text.count(needle) == 1, f"needle {needle!r} is not unique in the edited text"
    pos = text.index(token, text.index(needle))
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, column


def write_case(case: Case, tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "project"
    shutil.copytree(BASES[case.base], root, ignore=shutil.ignore_patterns("__pycache__"))
    target = root / usecase_file(case.base)
    text = target.read_text("utf-8") if case.text is None else case.text
    marker = tmp_path / "MARKER"
    for old, new in case.edits:
        assert text.count(old) == 1, f"{old!r} is not unique in {target.name}"
        text = text.replace(old, new.replace("{marker}", marker.as_posix()))
    target.write_text(text, "utf-8")
    return root, text


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def expected_line_re(file: str, line: int, column: int, path: str, message: str) -> str:
    where = rf"^{re.escape(file)}:{line}:{column}: "
    return where + (rf"{re.escape(path)}: " if path else "") + re.escape(message)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_mistake_is_reported_at_its_line_and_column(case: Case, tmp_path: Path, cli: Cli) -> None:
    root, text = write_case(case, tmp_path)
    proc = cli("-C", root, "validate")
    assert_no_traceback(proc)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line, column = location(text, case.at)
    pattern = expected_line_re(usecase_file(case.base), line, column, case.path, case.message)
    assert re.search(pattern, proc.stdout, re.MULTILINE), (
        f"expected a line matching {pattern!r}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    if case.id == "python-tag":
        assert not (tmp_path / "MARKER").exists(), "the YAML tag ran a command"


def test_there_are_at_least_24_kinds_of_mistake() -> None:
    assert len({c.id for c in CASES}) >= 24


THREE_ERRORS = Case(
    "three-errors",
    "",
    "",
    (0, 0),
    (
        ("  primary_metric: roc_auc", "  primary_metrc: roc_auc"),
        ("test_size: 0.2", "test_size: 1.5"),
        ("port: 8080", "port: 70000"),
    ),
)
THREE_EXPECTED = [
    ("goal.primary_metrc", "unknown key 'primary_metrc'", ("primary_metrc:", "primary_metrc")),
    ("data.split.test_size", "must be < 1, got 1.5", ("test_size: 1.5", "1.5")),
    ("deploy.rest.port", "must be <= 65535, got 70000", ("port: 70000", "70000")),
]
THREE_SEMANTIC = Case(
    "three-semantic-errors",
    "",
    "",
    (0, 0),
    (
        ("drop: [customer_id]", "drop: [customer_id, age]"),
        ("before: ingest", "before: ingets"),
        ("scoring: roc_auc", "scoring: rocauc"),
    ),
)
THREE_SEMANTIC_EXPECTED = [
    ("data.features.drop[1]", "column 'age' is listed", ("drop: [customer_id, age]", "age")),
    ("model.tuning.scoring", "unknown scikit-learn scorer", ("scoring: rocauc", "rocauc")),
    ("stages[0].before", "unknown stage 'ingets'", ("before: ingets", "ingets")),
]


@pytest.mark.parametrize(
    ("case", "expected"),
    [(THREE_ERRORS, THREE_EXPECTED), (THREE_SEMANTIC, THREE_SEMANTIC_EXPECTED)],
    ids=["schema", "semantic"],
)
def test_all_errors_of_a_file_are_reported_in_one_run(
    case: Case, expected: list[tuple[str, str, tuple[str, str]]], tmp_path: Path, cli
) -> None:
    root, text = write_case(case, tmp_path)
    proc = cli("-C", root, "validate")
    assert_no_traceback(proc)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("usecases/")]
    assert len(lines) == 3, proc.stdout
    for path, message, at in expected:
        line, column = location(text, at)
        pattern = expected_line_re("usecases/churn.yaml", line, column, path, message)
        assert re.search(pattern, proc.stdout, re.MULTILINE), (pattern, proc.stdout)
    assert "3 errors in 1 file" in proc.stderr


def test_json_format_gives_the_same_diagnostics(tmp_path: Path, cli: Cli) -> None:
    root, text = write_case(THREE_ERRORS, tmp_path)
    as_text = cli("-C", root, "validate")
    as_json = cli("-C", root, "validate", "--format", "json")
    assert_no_traceback(as_json)
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["valid"] is False
    diags = report["diagnostics"]
    assert len(diags) == 3
    for d in diags:
        assert set(d) >= {"file", "line", "column", "path", "message"}
        assert d["file"] == "usecases/churn.yaml"
    found = {(d["path"], d["line"], d["column"]) for d in diags}
    assert found == {(p, *location(text, at)) for p, _m, at in THREE_EXPECTED}
    # the very same diagnostics as the text format, line for line
    text_lines = [ln for ln in as_text.stdout.splitlines() if ln.startswith("usecases/")]
    rebuilt = []
    for d in diags:
        line = f"{d['file']}:{d['line']}:{d['column']}: {d['path']}: {d['message']}"
        rebuilt.append(f"{line} ({d['hint']})" if d.get("hint") else line)
    assert rebuilt == text_lines
    # --json is the same as --format json
    assert json.loads(cli("-C", root, "validate", "--json").stdout) == report


def test_validate_with_explicit_path_reports_the_same(tmp_path: Path, cli: Cli) -> None:
    root, text = write_case(CASES[0], tmp_path)
    proc = cli("-C", root, "validate", "usecases/churn.yaml")
    assert_no_traceback(proc)
    assert proc.returncode == 1
    line, column = location(text, CASES[0].at)
    pattern = expected_line_re("usecases/churn.yaml", line, column, CASES[0].path, "unknown key")
    assert re.search(pattern, proc.stdout, re.MULTILINE), proc.stdout


def test_validate_a_file_outside_any_project(tmp_path: Path, cli: Cli) -> None:
    """With -C DIR and no mlopsctl.yaml, paths are shown and resolved from DIR."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    houses = BASES["house-prices"]
    shutil.copy(houses / "data" / "houses.csv", work / "data" / "houses.csv")
    text = (houses / "usecases" / "house-prices.yaml").read_text("utf-8")
    (work / "uc.yaml").write_text(text, "utf-8")
    proc = cli("-C", work, "validate", "uc.yaml", cwd=tmp_path)
    assert_no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = text.replace("test_size: 0.2", "test_size: 2")
    (work / "uc.yaml").write_text(broken, "utf-8")
    proc = cli("-C", work, "validate", "uc.yaml", cwd=tmp_path)
    assert proc.returncode == 1
    line, column = location(broken, ("test_size: 2", "2"))
    pattern = expected_line_re("uc.yaml", line, column, "data.split.test_size", "must be < 1")
    assert re.search(pattern, proc.stdout, re.MULTILINE), proc.stdout


@pytest.mark.parametrize(
    "project",
    [*EXAMPLES, BASES["churn"]],
    ids=[*(p.name for p in EXAMPLES), "spec-example"],
)
def test_valid_projects_pass(project: Path, tmp_path: Path, cli: Cli) -> None:
    root = tmp_path / "project"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("__pycache__"))
    proc = cli("-C", root, "validate")
    assert_no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok"), proc.stdout
    as_json = json.loads(cli("-C", root, "validate", "--format", "json").stdout)
    assert as_json["valid"] is True
    assert as_json["diagnostics"] == []


def test_validate_outside_a_project_is_a_clear_error(tmp_path: Path, cli: Cli) -> None:
    proc = cli("-C", tmp_path, "validate")
    assert_no_traceback(proc)
    assert proc.returncode == 1
    assert "no mlopsctl.yaml" in proc.stderr
