"""The DVC remotes a repository's own config files define, read as text (no DVC import).

`validate` and `plan` import no DVC and read nothing outside the repository, so they cannot ask
DVC (whose global and system config files live outside it). They read `.dvc/config` and
`.dvc/config.local` for their ``['remote "NAME"']`` sections, to warn before a merge about a
use case's ``infra.remote`` that apply would refuse.
"""

from __future__ import annotations

import re

from mlopsctl.spec.model import Project
from mlopsctl.spec.paths import UnsafePathError, inside_repo

_SECTION = re.compile(r"""^\s*\[\s*'?remote\s+"([^"]+)"'?\s*\]""", re.M)
_FILES = (".dvc/config", ".dvc/config.local")


def defined_remotes(project: Project) -> set[str]:
    """The remote names of the repository's DVC config files (a file a symlink leads out of the
    repository through is not read)."""
    names: set[str] = set()
    for rel in _FILES:
        try:
            text = inside_repo(project.root, rel).read_text("utf-8", errors="replace")
        except (OSError, UnsafePathError):
            continue
        names.update(_SECTION.findall(text))
    return names


def unconfigured_remotes(project: Project) -> list[str]:
    """One warning per use case whose own ``infra.remote`` those files do not define."""
    own = project.own_remotes()
    if not own:
        return []  # nothing to read
    defined = defined_remotes(project)
    return [
        f"{project.usecase(name).path}: infra.remote: DVC remote '{remote}' is not configured "
        "in .dvc/config or .dvc/config.local: apply refuses to run unless DVC knows it (add it "
        f"with `dvc remote add {remote} URL`)"
        for remote, names in own.items()
        if remote not in defined
        for name in names
    ]
