"""Recording asks git, for every output, whether it is ignored: listed outputs answer at once.

The quick answer must equal dulwich's (what DVC would have been told) whenever it is given.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlopsctl.integrations.dvc import _listed_or

GITIGNORE = "/a.txt\n/b.txt\n!/b.txt\n/c.txt\n# comment\n/d[1].txt\n/e.txt \n/g.txt\r\n"
#: name -> what git says (checked against git itself below)
EXPECTED = {
    "a.txt": True,  # listed, but a negation (of b) follows it: dulwich decides
    "b.txt": False,  # re-included by a later negation: dulwich decides
    "c.txt": True,  # listed, no negation after it: answered at once
    "d[1].txt": False,  # a pattern, not a literal name (it matches d1.txt): dulwich decides
    "e.txt": True,  # git drops the trailing space; the quick path does not guess: dulwich
    "f.txt": False,  # not listed
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / ".gitignore").write_text(GITIGNORE)
    return tmp_path


def _git_says(repo: Path, rel: str) -> bool:
    proc = subprocess.run(["git", "check-ignore", "-q", rel], cwd=repo, check=False)
    return proc.returncode == 0


def test_quick_answers_equal_dulwich_and_git(repo: Path) -> None:
    from scmrepo.git import Git

    scm = Git(str(repo))
    try:
        asked: list[str] = []

        def dulwich(path: str) -> bool:
            asked.append(Path(path).name)
            return bool(scm.is_ignored(path))

        quick = _listed_or(dulwich)
        for name, expected in EXPECTED.items():
            path = str(repo / "work" / name)
            assert _git_says(repo, f"work/{name}") == expected, name
            assert bool(scm.is_ignored(path)) == expected, name
            assert quick(path) == expected, name
        # only c answered at once: any negation after a listing sends it to dulwich
        assert "c.txt" not in asked
        assert {"a.txt", "b.txt", "d[1].txt", "e.txt", "f.txt"} <= set(asked)
    finally:
        scm.close()


def test_an_edited_gitignore_is_read_again(repo: Path) -> None:
    calls: list[str] = []

    def fallback(path: str) -> bool:
        calls.append(path)
        return False

    quick = _listed_or(fallback)
    path = str(repo / "work" / "c.txt")
    assert quick(path) and not calls
    with (repo / "work" / ".gitignore").open("a") as fh:
        fh.write("!/c.txt\n")  # now re-included
    assert quick(path) is False and calls == [path]
    assert not _git_says(repo, "work/c.txt")
