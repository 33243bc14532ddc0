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


_ANY_SECTION = re.compile(r"""^\[\s*'?(.*?)'?\s*\]$""")
_REMOTE_SECTION = re.compile(r'remote\s+"([^"]+)"')


def parse_dvc_config(text: str) -> tuple[str, dict[str, str]]:
    """(DVC's default remote, remote name -> URL) from the text of a DVC config file."""
    default, urls, section = "", {}, ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        head = _ANY_SECTION.match(line)
        if head:
            section = head.group(1).strip()
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip().strip("'\"")
        remote = _REMOTE_SECTION.fullmatch(section)
        if section == "core" and key == "remote":
            default = value
        elif remote and key == "url":
            urls[remote.group(1)] = value
    return default, urls


def remote_changes(old: str, new: str) -> list[str]:
    """What a change of ``.dvc/config`` from *old* to *new* (texts) does to where DVC pushes:
    remotes added, removed or pointed elsewhere, and the default remote."""
    old_default, old_urls = parse_dvc_config(old)
    new_default, new_urls = parse_dvc_config(new)
    out = []
    for name in sorted(old_urls.keys() | new_urls.keys()):
        was, now = old_urls.get(name), new_urls.get(name)
        if was == now:
            continue
        if was is None:
            out.append(f"DVC remote '{name}' added: {now}")
        elif now is None:
            out.append(f"DVC remote '{name}' removed (was {was})")
        else:
            out.append(f"DVC remote '{name}' now points at {now} (was {was})")
    if old_default != new_default:
        out.append(
            f"DVC's default remote is now '{new_default or '(none)'}' "
            f"(was '{old_default or '(none)'}')"
        )
    return out
