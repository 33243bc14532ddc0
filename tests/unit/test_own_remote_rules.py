"""Which DVC remote each use case's outputs and data sources name in dvc.yaml and .dvc files."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from mlopsctl.compile import dvcyaml
from mlopsctl.compile.graph import Graph, compile_project
from mlopsctl.gitops.review import Review
from mlopsctl.plan.api import plan_directory
from mlopsctl.plan.model import Plan, PlanInputs, RemotePlan
from mlopsctl.plan.planner import moved_remotes
from mlopsctl.plan.state import AppliedState, LockedStage
from mlopsctl.report.plan_view import render_markdown
from mlopsctl.spec.loader import load_project
from mlopsctl.spec.remotes import parse_dvc_config, remote_changes

ROOT = Path(__file__).resolve().parents[2]
HOUSES = ROOT / "examples" / "house-prices"


def _project(tmp_path: Path, remotes: dict[str, str | None], project_remote: str | None) -> Path:
    """house-prices copied once per use case name in *remotes* (name -> its infra.remote), the
    copies named ``a``, ``b``...: ``a`` and ``b`` share data/houses.csv, others read their own."""
    root = tmp_path / "p"
    shutil.copytree(HOUSES, root)
    text = (root / "usecases" / "house-prices.yaml").read_text("utf-8")
    (root / "usecases" / "house-prices.yaml").unlink()
    for name, remote in remotes.items():
        uc = text.replace("  name: house-prices\n", f"  name: {name}\n", 1)
        if name not in ("a", "b"):
            shutil.copy(root / "data" / "houses.csv", root / "data" / f"{name}.csv")
            uc = uc.replace("path: data/houses.csv", f"path: data/{name}.csv", 1)
        if remote is not None:
            uc = uc.replace("  executor: local\n", f"  executor: local\n  remote: {remote}\n", 1)
        (root / "usecases" / f"{name}.yaml").write_text(uc, "utf-8")
    if project_remote is not None:
        config = root / "mlopsctl.yaml"
        config.write_text(
            config.read_text("utf-8").replace(
                "# remote: storage ", f"remote: {project_remote} ", 1
            ),
            "utf-8",
        )
    return root


def test_own_remote_is_a_use_cases_remote_unless_it_is_the_projects(tmp_path: Path) -> None:
    root = _project(tmp_path, {"a": "vault", "b": "storage", "c": None}, "storage")
    project = load_project(root)
    assert project.config.remote == "storage"
    assert [project.own_remote(n) for n in "abc"] == ["vault", None, None]
    assert project.own_remotes() == {"vault": ["a"]}


def test_a_source_names_a_remote_only_when_all_its_users_share_it(tmp_path: Path) -> None:
    # a and b share data/houses.csv: a names vault, b the default -> the file names none
    project = load_project(_project(tmp_path, {"a": "vault", "b": None, "c": "vault"}, None))
    assert project.source_remotes() == {"data/c.csv": "vault"}


def test_shared_source_of_one_remote_names_it(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path, {"a": "vault", "b": "vault", "d": "x"}, None))
    assert project.source_remotes() == {"data/houses.csv": "vault", "data/d.csv": "x"}


def test_dvc_yaml_names_the_remote_on_cached_outputs_only(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path, {"a": "vault", "c": None}, None))
    stages = yaml.safe_load(dvcyaml.render(compile_project(project)))["stages"]
    for name, entry in stages.items():
        for out in entry.get("outs", []):
            path, flags = next(iter(out.items())) if isinstance(out, dict) else (out, {})
            cached = flags.get("cache", True)
            want = "vault" if name.startswith("a_") and cached else None
            assert flags.get("remote") == want, (name, path)
    assert any("remote" in str(entry) for name, entry in stages.items() if name == "a_train")


def _state(graph: Graph) -> AppliedState:
    return AppliedState({st.dvc_name: LockedStage(st.dvc_name, st.cmd) for st in graph}, b"x")


def test_plan_reports_a_move_from_what_dvc_yaml_names(tmp_path: Path) -> None:
    before = load_project(_project(tmp_path / "1", {"a": None, "c": "x"}, None))
    after = load_project(_project(tmp_path / "2", {"a": "vault", "c": "x"}, None))
    graph = compile_project(after)
    (after.root / "dvc.yaml").write_text(dvcyaml.render(compile_project(before)), "utf-8")
    assert moved_remotes(after, graph, _state(graph)) == (RemotePlan("a", "", "vault"),)
    # read once per version of dvc.yaml: the same answer from the stat-keyed copy
    assert (after.root / ".mlopsctl" / "dvcyaml-remotes.json").is_file()
    assert moved_remotes(after, graph, _state(graph)) == (RemotePlan("a", "", "vault"),)
    # written by apply: nothing left to move; a use case never applied moves nothing
    (after.root / "dvc.yaml").write_text(dvcyaml.render(graph), "utf-8")
    assert moved_remotes(after, graph, _state(graph)) == ()
    (after.root / "dvc.yaml").unlink()
    assert moved_remotes(after, graph, AppliedState({}, b"")) == ()


def test_a_hostile_dvc_yaml_moves_nothing_and_is_not_followed(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path, {"a": "vault"}, None))
    graph = compile_project(project)
    outside = tmp_path / "outside.yaml"
    outside.write_text(dvcyaml.render(graph).replace("remote: vault", "remote: evil"), "utf-8")
    (project.root / "dvc.yaml").symlink_to(outside)
    assert moved_remotes(project, graph, _state(graph)) == ()
    (project.root / "dvc.yaml").unlink()
    weird = {"stages": {st.dvc_name: {"outs": [["x"], {"a": 1, "b": 2}, 3, {}]} for st in graph}}
    (project.root / "dvc.yaml").write_text("# remote:\n" + yaml.safe_dump(weird), "utf-8")
    assert moved_remotes(project, graph, _state(graph)) == ()


# what DVC writes (configobj): sections quoted, four-space keys
DVC_CONFIG = """[core]
    remote = storage
['remote "storage"']
    url = s3://bank-ml/artifacts
; a comment
['remote "vault"']
    url = /mnt/vault
    # another comment
"""


def test_dvc_config_remotes_and_their_changes() -> None:
    assert parse_dvc_config(DVC_CONFIG) == (
        "storage",
        {"storage": "s3://bank-ml/artifacts", "vault": "/mnt/vault"},
    )
    evil = DVC_CONFIG.replace("s3://bank-ml/artifacts", "s3://elsewhere/x").replace(
        "remote = storage", "remote = vault"
    )
    evil = evil.replace("""['remote "vault"']\n    url = /mnt/vault\n""", "")
    assert remote_changes(DVC_CONFIG, evil) == [
        "DVC remote 'storage' now points at s3://elsewhere/x (was s3://bank-ml/artifacts)",
        "DVC remote 'vault' removed (was /mnt/vault)",
        "DVC's default remote is now 'vault' (was 'storage')",
    ]
    assert remote_changes("", DVC_CONFIG)[0] == "DVC remote 'storage' added: s3://bank-ml/artifacts"
    assert remote_changes(DVC_CONFIG, DVC_CONFIG) == []


def test_the_comment_escapes_what_a_url_could_break() -> None:
    review = Review(None, "no base", remotes=("DVC remote 'x' added: s3://a|`b`<c>",))
    plan = Plan(stages=(), inputs=PlanInputs("", {}, {}, {}, "0"))
    md = render_markdown(plan, review)
    assert "- DVC remote 'x' added: s3://a\\|'b'&lt;c>" in md


def test_a_plan_of_one_use_case_still_shows_another_ones_move(tmp_path: Path) -> None:
    """apply -u c writes dvc.yaml for every use case: a's move back to the project's remote
    lands with it, so the plan of c says so."""
    before = load_project(_project(tmp_path / "1", {"a": "vault", "c": None}, None))
    root = _project(tmp_path / "2", {"a": None, "c": None}, None)
    (root / "dvc.yaml").write_text(dvcyaml.render(compile_project(before)), "utf-8")
    plan = plan_directory(root, usecases=("c",)).plan
    assert {sp.usecase for sp in plan.stages} == {"c"}
    assert plan.remotes == (RemotePlan("a", "vault", ""),)


def test_the_copy_of_dvc_yaml_does_not_depend_on_the_specs_of_the_plan_that_made_it(
    tmp_path: Path,
) -> None:
    """The stat-keyed copy holds what dvc.yaml says, not one plan's reading of it: a use case
    back in the specs after a plan without it is compared with what dvc.yaml names for it."""
    before = load_project(_project(tmp_path / "1", {"a": "vault", "c": "vault"}, None))
    root = _project(tmp_path / "2", {"a": "vault"}, None)
    (root / "dvc.yaml").write_text(dvcyaml.render(compile_project(before)), "utf-8")
    without_c = load_project(root)
    graph = compile_project(without_c)
    assert moved_remotes(without_c, graph, _state(graph)) == ()  # writes the copy
    shutil.copy(tmp_path / "1" / "p" / "usecases" / "c.yaml", root / "usecases" / "c.yaml")
    shutil.copy(root / "data" / "houses.csv", root / "data" / "c.csv")
    uc = root / "usecases" / "c.yaml"
    uc.write_text(uc.read_text("utf-8").replace("  remote: vault\n", ""), "utf-8")
    with_c = load_project(root)
    graph = compile_project(with_c)
    assert moved_remotes(with_c, graph, _state(graph)) == (RemotePlan("c", "vault", ""),)


def test_a_remote_section_of_credentials_only_still_defines_the_remote() -> None:
    local = """['remote "vault"']  # credentials only; the URL is in .dvc/config
    access_key_id = AKIA
"""
    assert parse_dvc_config(local) == ("", {"vault": ""})
    assert remote_changes("", local) == ["DVC remote 'vault' added: (no URL)"]
