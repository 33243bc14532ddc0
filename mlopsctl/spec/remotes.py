"""The DVC remotes a repository's own config files define, read as text (no DVC import).

`validate` and `plan` import no DVC and read nothing outside the repository, so they cannot ask
DVC (whose global and system config files live outside it). They read `.dvc/config` and
`.dvc/config.local` for their ``['remote "NAME"']`` sections, to warn before a merge about a
use case's ``infra.remote`` that apply would refuse.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlopsctl.spec.model import Project
from mlopsctl.spec.paths import UnsafePathError, inside_repo

_FILES = (".dvc/config", ".dvc/config.local")
#: a DVC config file larger than this is not read
MAX_CONFIG = 1 << 20


def read_config(root: Path, rel: str) -> str:
    """The text of the DVC config file *rel* of the repository at *root*; "" when there is none,
    when it is larger than :data:`MAX_CONFIG`, or when a symlink leads out of the repository."""
    try:
        path = inside_repo(root, rel)
        if path.stat().st_size > MAX_CONFIG:
            return ""
        return path.read_text("utf-8", errors="replace")
    except (OSError, UnsafePathError):
        return ""


def defined_remotes(project: Project) -> set[str]:
    """The remote names of the repository's DVC config files."""
    names: set[str] = set()
    for rel in _FILES:
        names.update(parse_dvc_config(read_config(project.root, rel))[1])
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
        f"with `dvc remote add {remote} URL`; one in DVC's global or system config is not read "
        "here, which reads nothing outside the repository)"
        for remote, names in own.items()
        if remote not in defined
        for name in names
    ]


#: a section line (``[core]``, ``['remote "storage"']``), a comment after it allowed
_ANY_SECTION = re.compile(r"""^\[\s*'?(.*?)'?\s*\]\s*(?:[#;].*)?$""")
_REMOTE_SECTION = re.compile(r'remote\s+"([^"]+)"')


def parse_dvc_config(text: str) -> tuple[str, dict[str, str]]:
    """(DVC's default remote, remote name -> URL) from the text of a DVC config file; a remote
    section without a URL (``config.local`` often holds only credentials) maps to ""."""
    urls: dict[str, str] = {}
    default, section = "", ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        head = _ANY_SECTION.match(line)
        if head:
            section = head.group(1).strip()
            remote = _REMOTE_SECTION.fullmatch(section)
            if remote:
                urls.setdefault(remote.group(1), "")
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
            out.append(f"DVC remote '{name}' added: {now or '(no URL)'}")
        elif now is None:
            out.append(f"DVC remote '{name}' removed (was {was or '(no URL)'})")
        else:
            out.append(
                f"DVC remote '{name}' now points at {now or '(no URL)'} (was {was or '(no URL)'})"
            )
    if old_default != new_default:
        out.append(
            f"DVC's default remote is now '{new_default or '(none)'}' "
            f"(was '{old_default or '(none)'}')"
        )
    return out
