"""Where each use case's files live. Pure naming, no I/O: shared by compile and the stages.

Artifacts (large, DVC-cached, git-ignored) go under ``artifacts/<name>/``; reports (small,
committed to git, ``cache: false`` in dvc.yaml) under ``reports/<name>/``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the files of a deployment bundle (``artifacts/<name>/deploy/``), by role
BUNDLE_MODEL = "model.skops"
BUNDLE_SIGNATURE = "signature.json"
BUNDLE_MANIFEST = "manifest.json"  # written last: `serve` watches it to reload
#: the training reference profile that monitoring compares live data with
BUNDLE_PROFILE = "reference_profile.json"
#: the files of ``reports/<name>/monitoring/``: render.write_reports' three, and the breach record
#: that the planner reads for ``on_breach: retrain`` (plain JSON, no pandas on the plan path)
MONITORING_FILES = ("monitoring.json", "report.html", "report.md")
MONITORING_BREACH = "breach.json"


@dataclass(frozen=True)
class UseCasePaths:
    """Where a use case's built-in stages read and write (artifacts/NAME, reports/NAME)."""

    name: str

    @property
    def artifacts(self) -> str:
        return f"artifacts/{self.name}"

    @property
    def reports(self) -> str:
        return f"reports/{self.name}"

    @property
    def snapshot(self) -> str:
        """The ingested (joined) data, as Parquet."""
        return f"{self.artifacts}/snapshot.parquet"

    @property
    def train_set(self) -> str:
        return f"{self.artifacts}/train.parquet"

    @property
    def test_set(self) -> str:
        return f"{self.artifacts}/test.parquet"

    @property
    def model(self) -> str:
        """The fitted scikit-learn pipeline, as a canonical (byte-reproducible) skops file."""
        return f"{self.artifacts}/model.skops"

    @property
    def signature(self) -> str:
        """The model's input signature (features, dtypes, categories and ranges seen), by train."""
        return f"{self.artifacts}/signature.json"

    @property
    def reference_profile(self) -> str:
        """The monitoring reference profile of the training data (mlopsctl/monitor/profile.py)."""
        return f"{self.artifacts}/reference_profile.json"

    @property
    def bundle(self) -> str:
        """The deployment bundle (a directory, DVC-tracked): what `mlopsctl serve` reads."""
        return f"{self.artifacts}/deploy"

    def bundle_file(self, name: str) -> str:
        """A file of the bundle: one of :data:`BUNDLE_FILES`."""
        return f"{self.bundle}/{name}"

    @property
    def validation(self) -> str:
        """Data-check results: every rule, pass or fail, with counts and examples."""
        return f"{self.reports}/validation.json"

    @property
    def training(self) -> str:
        """Features used (inferred or declared), effective params, tuning results."""
        return f"{self.reports}/training.json"

    @property
    def metrics(self) -> str:
        return f"{self.reports}/metrics.json"

    @property
    def plots(self) -> str:
        return f"{self.reports}/plots"

    def plot_files(self, problem: str) -> tuple[str, ...]:
        """Plot data (DVC plots format, JSON) and rendered PNGs written by evaluate."""
        names: tuple[str, ...]
        if problem == "regression":
            names = ("residuals.json", "residuals.png")
        elif problem == "binary_classification":
            names = ("confusion.json", "confusion.png", "roc.json", "roc.png")
        else:
            names = ("confusion.json", "confusion.png")
        return tuple(f"{self.plots}/{n}" for n in names)

    @property
    def monitoring(self) -> str:
        """The monitor stage's reports (JSON, HTML, markdown), committed to git."""
        return f"{self.reports}/monitoring"

    def monitoring_file(self, name: str) -> str:
        return f"{self.monitoring}/{name}"

    @property
    def gate(self) -> str:
        """The gate verdict: always written, pass or fail."""
        return f"{self.reports}/gate.json"
