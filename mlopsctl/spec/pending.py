"""Spec keys that validate but that this version does not act on yet: warned, never ignored.

SPEC promises every key; a key whose feature has not landed must not pass silently, or a user
who writes ``infra.remote`` believes apply pushes there. `validate` and `plan` print these
as warnings; each entry goes when its feature lands.
"""

from __future__ import annotations

from collections.abc import Iterable

from mlopsctl.spec.model import UseCaseFile


def not_acted_on(usecases: Iterable[UseCaseFile]) -> list[str]:
    """One warning per spec key that is set but not acted on by this version."""
    out = []
    for ucf in usecases:
        uc = ucf.spec
        where = ucf.path
        if uc.infra.remote is not None:
            out.append(
                f"{where}: infra.remote: per-use-case remotes are not acted on yet; apply "
                "pushes to the project's remote (mlopsctl.yaml `remote:`)"
            )
    return out
