"""``${env:NAME}`` in a custom stage's cmd becomes the shell's ``$NAME`` (never its value, never
``${`` that DVC would take for its own templating), and the value stays one word in any quoting."""

from __future__ import annotations

import os
import subprocess

import pytest

from mlopsctl.compile.shell import shell_command

VALUE = "two words*"  # a space and a glob character: neither may split or expand


@pytest.mark.parametrize(
    ("cmd", "compiled", "printed"),
    [
        ("printf '<%s>' ${env:V}", "printf '<%s>' \"$V\"", f"<{VALUE}>"),
        ("printf '<%s>' ${env:V}_x", "printf '<%s>' \"$V\"_x", f"<{VALUE}_x>"),
        ('printf "<%s>" "a=${env:V}_x"', 'printf "<%s>" "a=$V""_x"', f"<a={VALUE}_x>"),
        ("printf '<%s>' 'a ${env:V}'", "printf '<%s>' 'a '\"$V\"''", f"<a {VALUE}>"),
        ("printf '<%s>' \\\"${env:V}", 'printf \'<%s>\' \\""$V"', f'<"{VALUE}>'),
        ("printf '<%s>' $HOME_NOT_OURS", "printf '<%s>' $HOME_NOT_OURS", "<>"),
    ],
)
def test_compiled_command_runs_with_the_value(cmd: str, compiled: str, printed: str) -> None:
    out, names = shell_command(cmd)
    assert out == compiled
    assert "${" not in out
    assert names == (("V",) if "${env:V}" in cmd else ())
    env = {k: v for k, v in os.environ.items() if k != "HOME_NOT_OURS"}
    proc = subprocess.run(out, shell=True, env={**env, "V": VALUE}, capture_output=True, text=True)
    assert proc.stdout == printed


def test_names_are_listed_once_in_order() -> None:
    assert shell_command("a ${env:B} ${env:A} ${env:B}")[1] == ("B", "A")
