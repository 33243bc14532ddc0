"""What the pull-request comment compares: the base branch's last apply with the branch's.

``plan --format markdown`` is the comment. Its base is ``--base REV``, or in a GitHub pull
request ``origin/$GITHUB_BASE_REF``; without one the comment says so in one line. The branch
side is the working tree (the checkout of the pull request): where the branch applied, its
reports and dvc.lock entries differ from the base's.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlopsctl.gitops.diff import Diff, compare
from mlopsctl.gitops.revision import Git, RevisionError, read_revision, read_worktree
from mlopsctl.spec.model import Project

#: how the comment names the two sides
BRANCH = "branch"


@dataclass(frozen=True)
class Review:
    diff: Diff | None  # None: nothing to compare with (``note`` says why)
    note: str = ""
    #: what the branch changes in .dvc/config's remotes: where apply on merge would push
    remotes: tuple[str, ...] = ()

    @property
    def base(self) -> str:
        return self.diff.old.label if self.diff else ""


def review(
    root: Path,
    base: str | None,
    names: Sequence[str],
    goals: Mapping[str, Mapping[str, str]] | None = None,
) -> Review:
    """The comparison for the comment. An explicit *base* that does not resolve is an error;
    the default (``origin/$GITHUB_BASE_REF``) only leaves the comparison out."""
    if base is None:
        ref = os.environ.get("GITHUB_BASE_REF", "").strip()
        if not ref:
            return Review(
                None,
                "No metrics comparison: no base branch (pass `--base REV`; in a GitHub pull "
                "request `origin/$GITHUB_BASE_REF` is the default).",
            )
        try:
            git = Git(root)
            git.resolve(f"origin/{ref}")
        except RevisionError:
            return Review(
                None,
                f"No metrics comparison: the base `origin/{ref}` is not in this clone "
                "(fetch it, e.g. `actions/checkout` with `fetch-depth: 0`).",
            )
        base = f"origin/{ref}"
    else:
        git = Git(root)
    old = read_revision(root, base, git)
    new = dataclasses.replace(read_worktree(root), label=BRANCH)
    return Review(compare(old, new, list(names), goals), remotes=_remote_changes(root, git, base))


def _remote_changes(root: Path, git: Git, base: str) -> tuple[str, ...]:
    """The branch's changes to the DVC remotes of ``.dvc/config`` against *base* (a pull
    request can point the remote apply pushes to at another place: the reviewer must see it).
    A file that is not a regular one inside the repository reads as empty."""
    from mlopsctl.spec.remotes import MAX_CONFIG, read_config, remote_changes

    rel = ".dvc/config"
    commit = git.resolve(base)
    blob = git.read([(commit, rel)], {rel: MAX_CONFIG}).get((commit, rel))
    old = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else ""
    return tuple(remote_changes(old, read_config(root, rel)))


def goal_directions(project: Project) -> dict[str, dict[str, str]]:
    """Per use case, which way each goal metric is better: a ``min`` alone makes higher
    better, a ``max`` alone lower; a metric bounded on both sides has no better way."""
    return {
        uc.name: {
            metric: "higher" if bound.max is None else "lower"
            for metric, bound in uc.spec.goal.metrics.items()
            if (bound.min is None) != (bound.max is None)
        }
        for uc in project.usecases
    }
