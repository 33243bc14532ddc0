"""`mlopsctl init [--example NAME] [--remote URL]`."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import click

from mlopsctl.cli.main import settings
from mlopsctl.errors import MlopsctlError


def _examples_dir() -> Path:
    return Path(str(resources.files("mlopsctl").joinpath("examples")))


def available_examples() -> list[str]:
    d = _examples_dir()
    return (
        sorted(p.name for p in d.iterdir() if (p / "mlopsctl.yaml").is_file()) if d.is_dir() else []
    )


@click.command()
@click.option(
    "--example",
    default="breast-cancer",
    show_default=True,
    help="Example use case to start from (see examples/).",
)
@click.option(
    "--remote", "remote_url", help="Configure this path or URL as the default DVC remote."
)
@click.pass_context
def init(ctx: click.Context, example: str, remote_url: str | None) -> int:
    """Set up git, DVC, mlopsctl.yaml and an example use case in the current directory.

    Idempotent: run it again and it only adds what is missing; it never overwrites a file.
    """
    from mlopsctl.integrations import dvc, git

    root = settings(ctx).directory
    examples = available_examples()
    if example not in examples:
        from mlopsctl.errors import did_you_mean

        hint = did_you_mean(example, examples)
        raise MlopsctlError(
            f"unknown example '{example}'; available: {', '.join(examples)}"
            + (f" ({hint})" if hint else "")
        )
    if git.ensure_repo(root):
        click.echo("initialised git repository")
    top = Path(str(git.open_repo(root).working_tree_dir)).resolve()
    if top != root.resolve():
        # DVC, dvc.lock paths and apply's commits all work from the top of the work tree
        raise MlopsctlError(
            f"{root} is inside the git repository {top}: run `mlopsctl init` at its top level"
        )
    if dvc.ensure_initialised(root):
        click.echo("initialised DVC (analytics off)")

    src = _examples_dir() / example
    written, kept = _copy_tree(src, root)
    for rel in written:
        click.echo(f"wrote {rel}")
    for rel in kept:
        click.echo(f"kept existing {rel}")

    if git.ensure_ignored(root, ".mlopsctl/", "mlopsctl local cache and locks"):
        click.echo("added .mlopsctl/ to .gitignore")

    # the example's data files are DVC-tracked, like any data source should be
    data = [rel for rel in written if rel.startswith("data/") and not rel.endswith(".py")]
    untracked = [rel for rel in data if not (root / f"{rel}.dvc").exists()]
    if untracked:
        dvc.add(root, untracked)
        for rel in untracked:
            click.echo(f"tracked {rel} with DVC ({rel}.dvc)")
    if remote_url:
        from mlopsctl.spec.loader import PROJECT_FILE
        from mlopsctl.spec.yamlio import load_yaml

        doc, _ = load_yaml((root / PROJECT_FILE).read_text("utf-8"), PROJECT_FILE)
        name = (doc.data or {}).get("remote") or "storage"
        dvc.configure_remote(root, name, remote_url)
        click.echo(f"configured DVC remote '{name}' -> {remote_url} (default)")
    click.echo("next: mlopsctl plan, then mlopsctl apply")
    return 0


def _copy_tree(src: Path, dst: Path) -> tuple[list[str], list[str]]:
    written: list[str] = []
    kept: list[str] = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if path.is_dir() or "__pycache__" in rel or rel in ("README.md", "make_data.py"):
            continue
        target = dst / rel
        if target.exists():
            kept.append(rel)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.append(rel)
    return written, kept
