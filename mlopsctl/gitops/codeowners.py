"""`.github/CODEOWNERS` from `metadata.owners`: owners review the changes to their models.

mlopsctl owns one block of the file, between :data:`BEGIN` and :data:`END`; every line outside
it is the user's and is kept as written. The block maps each use case's file, its ``reports/``
folder and its ``artifacts/`` folder to its owners, so that a pull request touching them asks
those owners for a review. Pure text in, text out, plus a guarded read and an atomic write: no
git, no DVC, so that `validate` can check the block cheaply.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlopsctl.errors import MlopsctlError
from mlopsctl.fsutil import atomic_write
from mlopsctl.spec.model import UseCaseFile
from mlopsctl.spec.paths import file_kind, inside_repo

BEGIN = "# BEGIN mlopsctl (generated from metadata.owners by `mlopsctl codeowners`; do not edit)"
END = "# END mlopsctl"
#: Where GitHub looks, in its order: the first one present is the one it uses.
LOCATIONS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")
#: GitHub ignores a CODEOWNERS file above this size.
MAX_BYTES = 3 * 1024 * 1024

# what CODEOWNERS can name: @user, @org/team, or an email address
_OWNER = re.compile(
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[A-Za-z0-9](?:[A-Za-z0-9._-]*))?"
    r"|[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
)
# path characters that need no escaping (no space, glob, comment or negation character)
_PLAIN_PATH = re.compile(r"[A-Za-z0-9._/+@=,-]+")


class CodeownersError(MlopsctlError):
    """The CODEOWNERS file cannot be read or updated safely."""


@dataclass(frozen=True)
class CodeownersState:
    """The CODEOWNERS file as it is and as `metadata.owners` wants it."""

    path: str  # repository-relative, the file GitHub reads
    current: str | None  # None: no such file
    desired: str | None  # None: nothing to write (no file and no owners)
    rules: tuple[str, ...]
    warnings: tuple[str, ...]  # owners or paths CODEOWNERS cannot express (left out)

    @property
    def up_to_date(self) -> bool:
        return self.desired is None or self.current == self.desired

    @property
    def managed(self) -> bool:
        """Whether the file holds mlopsctl's block (the project opted in)."""
        return self.current is not None and BEGIN in self.current.splitlines()


def owner_problem(owner: str) -> str:
    """Why CODEOWNERS cannot name *owner*, or '' when it can."""
    if _OWNER.fullmatch(owner):
        return ""
    return f"'{owner}' is not a GitHub @user, @org/team or an email address"


def block_rules(usecases: Iterable[UseCaseFile]) -> tuple[list[str], list[str]]:
    """(rule lines, warnings): per use case, its file, reports/ and artifacts/ -> its owners."""
    rules: list[str] = []
    warnings: list[str] = []
    for ucf in sorted(usecases, key=lambda u: u.path):
        owners = []
        for owner in ucf.spec.metadata.owners:
            problem = owner_problem(owner)
            if problem:
                warnings.append(f"{ucf.path}: metadata.owners: {problem}; left out of CODEOWNERS")
            elif owner not in owners:
                owners.append(owner)
        if not owners:
            continue
        name = ucf.name
        for path in (ucf.path, f"reports/{name}/", f"artifacts/{name}/"):
            if not _PLAIN_PATH.fullmatch(path):
                warnings.append(
                    f"{ucf.path}: the path '{path}' has characters CODEOWNERS cannot match "
                    "literally; left out of CODEOWNERS"
                )
                continue
            rules.append(f"/{path} {' '.join(owners)}")
    return rules, warnings


def with_block(text: str | None, rules: Sequence[str], where: str = LOCATIONS[0]) -> str | None:
    """*text* with mlopsctl's block replaced by *rules* (appended when absent, removed when
    *rules* is empty); None when there is no file and nothing to put in one.

    The block goes at the end of a file that has none: in CODEOWNERS the last matching rule
    wins, so a catch-all rule of the user's (``* @org/all``) above it does not hide the owners.
    """
    if text is None and not rules:
        return None
    lines = (text or "").splitlines()
    block = [BEGIN, *rules, END] if rules else []
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    if len(begins) > 1:
        raise CodeownersError(
            f"{where} has {len(begins)} mlopsctl blocks (lines "
            + ", ".join(str(i + 1) for i in begins)
            + "): delete all but one, then run mlopsctl codeowners"
        )
    if begins:
        start = begins[0]
        end = next((i for i in range(start + 1, len(lines)) if lines[i].strip() == END), None)
        if end is None:
            raise CodeownersError(
                f"{where}:{start + 1}: the mlopsctl block has no '{END}' line: add it (or delete "
                "the block), then run mlopsctl codeowners"
            )
        new = lines[:start] + block + lines[end + 1 :]
    else:
        gap = [""] if lines and lines[-1].strip() and block else []
        new = lines + gap + block
    return "".join(f"{line}\n" for line in new)


def locate(root: Path) -> str:
    """The CODEOWNERS file GitHub would read (the first present), else ``.github/CODEOWNERS``."""
    for rel in LOCATIONS:
        if os.path.lexists(root / rel):
            return rel
    return LOCATIONS[0]


def read_codeowners(root: Path, rel: str) -> str | None:
    """The text of *rel*, or None when absent; refuses anything but a regular file inside the
    repository (a symlink out of it is not followed)."""
    path = inside_repo(root, rel)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CodeownersError(f"{rel} cannot be read: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise CodeownersError(f"{rel} is {file_kind(st.st_mode)}, not a regular file")
    if st.st_size > MAX_BYTES:
        raise CodeownersError(f"{rel} is larger than GitHub's limit of 3 MB")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise CodeownersError(f"{rel} is not UTF-8 text") from exc
    except OSError as exc:
        raise CodeownersError(f"{rel} cannot be read: {exc.strerror}") from exc


def codeowners_state(root: Path, usecases: Iterable[UseCaseFile]) -> CodeownersState:
    """Compare the CODEOWNERS file of the repository at *root* with the use cases' owners."""
    rel = locate(root)
    current = read_codeowners(root, rel)
    rules, warnings = block_rules(usecases)
    desired = with_block(current, rules, rel)
    return CodeownersState(rel, current, desired, tuple(rules), tuple(warnings))


def write_codeowners(root: Path, state: CodeownersState) -> bool:
    """Write the desired file atomically when it differs; True when it was written."""
    if state.up_to_date or state.desired is None:
        return False
    # resolved again right before the write: a symlink may have appeared since the read
    atomic_write(inside_repo(root, state.path), state.desired)
    return True


def validate_warnings(root: Path, usecases: Iterable[UseCaseFile]) -> list[str]:
    """What `validate` says about CODEOWNERS: nothing unless the file holds mlopsctl's block
    (the project opted in, as `mlopsctl init` does); then owners it cannot express, and
    whether the block is out of date."""
    try:
        state = codeowners_state(root, usecases)
    except MlopsctlError as exc:
        return [f"CODEOWNERS not checked: {exc.message}"]
    if not state.managed:
        return []
    out = list(state.warnings)
    if not state.up_to_date:
        out.append(f"{state.path} is out of date: run mlopsctl codeowners")
    return out
