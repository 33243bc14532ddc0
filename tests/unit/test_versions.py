"""Version tags: GTO's names parsed like gto parses them, SemVer bumps, trailers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlopsctl.gitops.versions import (
    Tag,
    Version,
    assignments_from,
    current_stages,
    latest,
    next_version,
    read_assignments,
    read_versions,
    trailer_tags,
    versions_from,
    with_trailers,
)

MODEL = "0c583a91756b25d940ac9e36214684dd"


def message(interface: str = "aaaaaaaaaaaa") -> str:
    return (
        "churn v1.0.0: gate passed\n\n"
        f"Model: artifacts/churn/model.skops md5:{MODEL}\n"
        f"Interface: regression, target y, 2 numeric and 0 categorical features "
        f"(fingerprint {interface})\n"
    )


def tag(name: str, commit: str = "c1", annotated: bool = True, msg: str = "") -> Tag:
    return Tag(name, commit, annotated, "2026-01-01T00:00:00+00:00", msg)


def test_versions_are_annotated_registrations_in_semver_order() -> None:
    tags = [
        tag("churn@v1.10.0"),
        tag("churn@v1.2.0"),
        tag("churn@v1.2.0-rc.1"),
        tag("churn@v0.9.0", annotated=False),  # lightweight: GTO ignores it too
        tag("churn@v1.3.0!"),  # a deregistration
        tag("churn#prod#1"),
        tag("fraud@v2.0.0"),
        tag("v1.0.0"),
        tag("churn@latest"),
    ]
    vs = versions_from(tags)
    assert [(v.usecase, v.version) for v in vs] == [
        ("churn", "v1.2.0-rc.1"),
        ("churn", "v1.2.0"),
        ("churn", "v1.10.0"),
        ("fraud", "v2.0.0"),
    ]
    last = latest(vs, "churn")
    assert last is not None and last.version == "v1.10.0"
    assert latest(vs, "other") is None


def test_the_message_carries_the_model_and_the_interface() -> None:
    v = Version("churn", "v1.0.0", "churn@v1.0.0", "c1", "", message("bbbbbbbbbbbb"))
    assert v.model_md5 == MODEL
    assert v.interface == "bbbbbbbbbbbb"
    foreign = Version("churn", "v1.0.0", "churn@v1.0.0", "c1", "", "registered by hand")
    assert foreign.model_md5 is None and foreign.interface is None


@pytest.mark.parametrize(
    ("previous", "interface", "expected"),
    [
        (None, "aaaaaaaaaaaa", "v1.0.0"),
        ("v1.0.0", "aaaaaaaaaaaa", "v1.1.0"),
        ("v1.4.2", "aaaaaaaaaaaa", "v1.5.0"),
        ("v1.4.2", "cccccccccccc", "v2.0.0"),  # the interface changed: major
        ("v3.1.0", None, "v3.2.0"),  # unknown interface: not a breaking change
    ],
)
def test_bumps(previous: str | None, interface: str | None, expected: str) -> None:
    prev = None
    if previous is not None:
        prev = Version("churn", previous, f"churn@{previous}", "c1", "", message())
    assert next_version(prev, interface)[0] == expected


def test_a_tag_by_hand_without_our_message_bumps_minor() -> None:
    prev = Version("churn", "v1.0.1", "churn@v1.0.1", "c1", "", "by hand")
    assert next_version(prev, "aaaaaaaaaaaa") == (
        "v1.1.0",
        "minor: a new model, same interface as v1.0.1",
    )


def test_assignments_follow_the_counter_and_unassignments() -> None:
    tags = [
        tag("churn@v1.0.0", "c1"),
        tag("churn@v1.1.0", "c2"),
        tag("churn#prod#1", "c1"),
        tag("churn#prod#3", "c2"),
        tag("churn#staging#2", "c1"),
        tag("churn#staging!#4", "c1"),
        tag("churn#dev", "c1"),  # GTO's simple form has no counter: not ours to count
    ]
    assigned = assignments_from(tags, versions_from(tags))
    assert [(a.stage, a.counter, a.version, a.unassign) for a in assigned] == [
        ("prod", 1, "v1.0.0", False),
        ("staging", 2, "v1.0.0", False),
        ("prod", 3, "v1.1.0", False),
        ("staging", 4, "v1.0.0", True),
    ]
    current = current_stages(assigned, "churn")
    assert list(current) == ["prod"] and current["prod"].version == "v1.1.0"


def test_trailers_replace_those_of_an_interrupted_apply() -> None:
    from mlopsctl.gitops.versions import NewTag

    merged = (
        "mlopsctl apply: churn\n\nchurn: ran: train\n\nMlopsctl-Plan: abc\n"
        "Mlopsctl-Version: churn@v1.1.0\nMlopsctl-Deploy: churn#prod#2\n"
    )
    out = with_trailers(merged, [NewTag("churn@v1.1.0", "m")])
    assert out.count("Mlopsctl-Version:") == 1 and "Mlopsctl-Deploy" not in out
    assert out.endswith("Mlopsctl-Plan: abc\nMlopsctl-Version: churn@v1.1.0\n")
    assert trailer_tags(out) == {"churn@v1.1.0"}
    assert with_trailers(merged, []).endswith("Mlopsctl-Plan: abc\n")


def test_reading_a_real_repository(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q", "-b", "main")
    git("config", "user.name", "T")
    git("config", "user.email", "t@example.com")
    (tmp_path / "f").write_text("x", "utf-8")
    git("add", "f")
    git("commit", "-q", "-m", "one")
    sha = git("rev-parse", "HEAD").strip()
    git("tag", "-a", "churn@v1.0.0", "-m", message())
    git("tag", "-a", "churn#prod#1", "-m", "deployed")
    git("tag", "churn@v1.1.0")  # lightweight
    versions = read_versions(tmp_path)
    assert [(v.tag, v.commit, v.model_md5) for v in versions] == [("churn@v1.0.0", sha, MODEL)]
    assigned = read_assignments(tmp_path)
    assert [(a.tag, a.version, a.commit) for a in assigned] == [("churn#prod#1", "v1.0.0", sha)]
    assert read_versions(tmp_path / "missing") == []
