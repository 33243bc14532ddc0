"""A custom stage's ``cmd`` with ``${env:NAME}`` turned into the shell's own ``$NAME``.

The value is read by the shell when the command runs, so it is never written to dvc.yaml,
dvc.lock, a plan or a log line of ours. The result must not contain ``${``: DVC treats that as
its own templating in dvc.yaml (and fails on ``env:NAME``), so the braces-free forms are used,
chosen by the quoting context of each reference so that the value stays one word:

- unquoted: ``"$NAME"`` (quoted, no word splitting; ``"$A"_x`` still ends the name);
- inside double quotes: ``$NAME""`` (the empty string ends the name: ``"$A""_x"``);
- inside single quotes: ``'"$NAME"'`` (leave the quotes, expand, re-enter them).
"""

from __future__ import annotations

import re

_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def shell_command(cmd: str) -> tuple[str, tuple[str, ...]]:
    """*cmd* with every ``${env:NAME}`` compiled for ``sh -c``, and the names it reads."""
    if "${" not in cmd:  # nothing to compile: the scan below would copy it character by character
        return cmd, ()
    out: list[str] = []
    names: dict[str, None] = {}
    quote = ""  # "", "'" or '"': the quoting context at position i
    i = 0
    while i < len(cmd):
        m = _REF.match(cmd, i)
        if m is not None:
            name = m.group(1)
            names[name] = None
            out.append({"": f'"${name}"', '"': f'${name}""', "'": f"'\"${name}\"'"}[quote])
            i = m.end()
            continue
        c = cmd[i]
        if c == "\\" and quote != "'" and i + 1 < len(cmd):
            out.append(cmd[i : i + 2])  # an escaped character never opens or closes a quote
            i += 2
            continue
        if c in "'\"" and quote in ("", c):
            quote = "" if quote == c else c
        out.append(c)
        i += 1
    return "".join(out), tuple(names)
