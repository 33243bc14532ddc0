"""The monitoring views: deterministic JSON, a markdown PR comment, a self-contained HTML page."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlopsctl.monitor.check import MetricResult, MonitorResult, Settings, check
from mlopsctl.monitor.profile import build_profile
from mlopsctl.monitor.render import render_html, render_json, render_markdown, write_reports


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cats = [f"c{i}" for i in range(30)] + ["<b>&evil</b>"]
    return pd.DataFrame(
        {
            "income": rng.normal(shift, 1, n),
            "segment": rng.choice(cats, n),
            "y": rng.normal(size=n),
        }
    )


@pytest.fixture(scope="module")
def results() -> list[MonitorResult]:
    ref = _frame(5_000, 0)
    profile = build_profile(ref, ["income"], ["segment"], target="y")
    batch = _frame(3_000, 1, shift=1.0).drop(columns=["y"])
    batch["extra"] = 1
    drifted = check("churn", profile, batch, Settings(max_missing=0.1))
    steady = check("house-prices", profile, _frame(3_000, 2), Settings(method="ks"))
    return [drifted, steady]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action", "srcset", "data"):
                self.refs.append((tag, name, value or ""))


def test_html_requests_nothing_from_the_network(results: list[MonitorResult]) -> None:
    page = render_html(results)
    parser = _Links()
    parser.feed(page)
    assert parser.refs == []
    assert "script" not in parser.tags and "link" not in parser.tags
    assert "http://" not in page and "https://" not in page
    assert "url(" not in page and "@import" not in page
    assert "svg" in parser.tags and "rect" in parser.tags


def test_html_shows_the_table_and_escapes_data(results: list[MonitorResult]) -> None:
    page = render_html(results)
    assert "<b>&evil</b>" not in page
    assert "&lt;b&gt;&amp;evil&lt;/b&gt;" in page
    for f in results[0].features:
        assert f"<td>{f.name}</td><td>{f.statistic}</td>" in page
    assert page.count("<svg") == 4  # two features in each of the two use cases
    assert "new column: extra" in page
    assert render_html(results) == page


def test_json_is_deterministic_and_lists_one_object_per_usecase(
    results: list[MonitorResult],
) -> None:
    text = render_json(results)
    assert text == render_json(results)
    doc = json.loads(text)
    assert [d["usecase"] for d in doc] == ["churn", "house-prices"]
    assert doc[0]["breach"] is True and doc[0]["features"][0]["drifted"] is True
    assert list(doc[0]) == sorted(doc[0])


def test_markdown_is_a_pr_comment(results: list[MonitorResult]) -> None:
    md = render_markdown(results)
    assert md.startswith("### Monitoring: churn (**breach**, 3000 rows)")
    assert "| income | psi |" in md
    assert "| segment | chisquare |" in md  # categorical under method ks
    assert "- new column: extra" in md
    broken = MonitorResult("u", 1, (), ("a | b",), {"rmse": MetricResult(2.0, None, 1.0)})
    text = render_markdown([broken])
    assert "- a \\| b" in text  # a pipe in data cannot break the table
    assert "| rmse | 2 | <= 1 | False |" in text


def test_write_reports_writes_the_three_files(results: list[MonitorResult], tmp_path: Path) -> None:
    out = tmp_path / "reports" / "churn" / "monitoring"
    written = write_reports(out, results[:1])
    assert sorted(p.name for p in written) == ["monitoring.json", "report.html", "report.md"]
    assert json.loads((out / "monitoring.json").read_text("utf-8"))[0]["usecase"] == "churn"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_html_renders_offline_in_headless_chromium(
    results: list[MonitorResult], tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(results), "utf-8")
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shot.exists() and shot.stat().st_size > 10_000, proc.stderr
