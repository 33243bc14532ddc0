"""The DVC remote as `mlopsctl verify` reads it: every object fetched and checked against its name.

The remote is the real repository's (its ``.dvc/config`` and ``.dvc/config.local``, a relative
URL resolved by DVC against the config file), opened through DVC's in-process API, never the
scratch worktree's copy of the config.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsctl.errors import StateError


@dataclass(frozen=True)
class ObjectCheck:
    """One recorded object, as found: on the DVC remote, or (uncached outputs) in git at REV."""

    path: str  # repo-relative; a file inside a tracked folder is ``folder/relpath``
    md5: str  # the name REV records
    role: str  # "input" | "output"
    where: str  # "remote" | "git"
    state: str  # "ok" | "missing" | "corrupt"
    actual: str = ""  # the md5 of what was found, when corrupt

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "md5": self.md5,
            "role": self.role,
            "where": self.where,
            "state": self.state,
            "actual": self.actual or None,
        }


class RemoteStore:
    """Objects fetched from the DVC remote into a local folder, each checked against its name."""

    def __init__(self, odbs: Sequence[tuple[str, Any]], folder: Path) -> None:
        """*odbs*: (name, object database) of each remote, asked in turn for an object (the
        project's, then the use cases' own: objects are named by content, so any holds it)."""
        self.odbs = list(odbs)
        self.name = ", ".join(name for name, _ in self.odbs)
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._seen: dict[str, tuple[str, str]] = {}  # md5 -> (state, actual)

    def local(self, md5: str) -> Path:
        return self.folder / md5

    def fetch(self, md5: str) -> tuple[str, str]:
        """("ok" | "missing" | "corrupt", the md5 found) for the object named *md5*."""
        if md5 not in self._seen:
            self._seen[md5] = self._fetch(md5)
        return self._seen[md5]

    def _fetch(self, md5: str) -> tuple[str, str]:
        found = ("missing", "")
        for name, odb in self.odbs:
            state, actual = self._fetch_from(name, odb, md5)
            if state == "ok":
                return state, actual
            if state == "corrupt":
                found = (state, actual)
        return found

    def _fetch_from(self, name: str, odb: Any, md5: str) -> tuple[str, str]:
        from mlopsctl.plan.hashing import file_md5

        rpath = odb.oid_to_path(md5)
        dest = self.local(md5)
        try:
            if not odb.fs.exists(rpath):
                return "missing", ""
            odb.fs.get_file(rpath, os.fspath(dest))
        except FileNotFoundError:
            return "missing", ""
        except Exception as exc:  # the remote's file system: network, permissions
            raise StateError(f"cannot read DVC remote '{name}': {_one_line(exc)}") from exc
        actual = file_md5(dest)
        expected = md5.removesuffix(".dir")
        if actual != expected:
            dest.unlink()
            return "corrupt", actual
        return "ok", actual

    def check(self, rel: str, md5: str, role: str) -> list[ObjectCheck]:
        """Fetch the object of *rel* (a folder: its listing and every file in it)."""
        state, actual = self.fetch(md5)
        checks = [
            ObjectCheck(rel, md5, role, "remote", state, actual if state == "corrupt" else "")
        ]
        if state == "ok" and md5.endswith(".dir"):
            for entry in self.listing(md5):
                sub_state, sub_actual = self.fetch(entry["md5"])
                sub = f"{rel}/{entry['relpath']}"
                checks.append(
                    ObjectCheck(
                        sub,
                        entry["md5"],
                        role,
                        "remote",
                        sub_state,
                        sub_actual if sub_state == "corrupt" else "",
                    )
                )
        return checks

    def listing(self, md5: str) -> list[dict[str, str]]:
        """The entries of a fetched ``.dir`` object (DVC's JSON list of md5 and relpath)."""
        try:
            data = json.loads(self.local(md5).read_text("utf-8"))
            return [{"md5": str(e["md5"]), "relpath": str(e["relpath"])} for e in data]
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise StateError(f"DVC remote '{self.name}': {md5} is not a folder listing") from exc

    def place(self, root: Path, rel: str, md5: str) -> None:
        """Write the (fetched, checked) object of *rel* into the scratch worktree."""
        from mlopsctl.spec.paths import inside_repo

        if md5.endswith(".dir"):
            entries = self.listing(md5)
            for entry in entries:
                self._copy(inside_repo(root, f"{rel}/{entry['relpath']}"), entry["md5"])
        else:
            self._copy(inside_repo(root, rel), md5)

    def _copy(self, dst: Path, md5: str) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.local(md5), dst)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def open_remote(
    real_root: Path,
    wanted: str | None,
    folder: Path,
    own: Mapping[str, Sequence[str]] | None = None,
) -> RemoteStore:
    """The DVC remote of the real repository (config and config.local), and the use cases' own
    remotes *own* (name -> the use cases naming it), opened for reading."""
    from mlopsctl.integrations import dvc

    name = dvc.remote_configured(real_root, wanted)
    if name is None:
        raise StateError(
            "no DVC remote is configured: verify fetches REV's data and artifacts from it "
            "(add one with `dvc remote add -d NAME URL`)"
        )
    names = [name]
    for remote, usecases in (own or {}).items():
        if dvc.remote_configured(real_root, remote) != remote:
            raise StateError(
                f"DVC remote '{remote}' (infra.remote of {', '.join(usecases)}) is not "
                f"configured: verify fetches their data and artifacts from it (add it with "
                f"`dvc remote add {remote} URL`)"
            )
        if remote not in names:
            names.append(remote)
    odbs = []
    with dvc.open_repo(real_root) as repo:
        for remote in names:
            try:
                odb = repo.cloud.get_remote_odb(remote, "verify")
            except Exception as exc:  # a remote DVC cannot open (bad URL, missing plugin)
                raise StateError(f"cannot open DVC remote '{remote}': {_one_line(exc)}") from exc
            url = repo.config["remote"][remote].get("url", "")
            local = getattr(odb.fs, "protocol", "") in ("local", "file")
            if local and not os.path.isdir(odb.path):
                raise StateError(
                    f"DVC remote '{remote}' ({url}) cannot be reached: {odb.path} is not a "
                    "directory"
                )
            odbs.append((remote, odb))
    return RemoteStore(odbs, folder)


def tracked_sources(root: Path) -> dict[str, str]:
    """Every output of the ``.dvc`` files under *root*: repo-relative path -> md5."""
    import yaml

    from mlopsctl.spec.yaml12 import Loader

    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in (".git", ".dvc", ".mlopsctl"))
        for name in sorted(filenames):
            if not name.endswith(".dvc") or name == ".dvc":
                continue
            dvcfile = Path(dirpath) / name
            try:
                data = yaml.load(dvcfile.read_bytes(), Loader=Loader)
            except (OSError, yaml.YAMLError) as exc:
                rel = dvcfile.relative_to(root).as_posix()
                raise StateError(f"{rel} at this revision is not a valid .dvc file") from exc
            folder = Path(dirpath).relative_to(root)
            for item in (data or {}).get("outs") or [] if isinstance(data, dict) else []:
                if isinstance(item, dict) and item.get("path") and item.get("md5"):
                    rel = os.path.normpath(folder / str(item["path"])).replace(os.sep, "/")
                    out[rel] = str(item["md5"])
    return out


def objects_message(bad: list[ObjectCheck]) -> str:
    parts = []
    for c in bad[:3]:
        where = "DVC remote" if c.where == "remote" else "git at this revision"
        if c.state == "missing":
            parts.append(f"{c.path} ({c.md5[:7]}) is missing from the {where}")
        else:
            parts.append(
                f"{c.path}: the {where} holds content hashing to {c.actual[:7]}, "
                f"not {c.md5.removesuffix('.dir')[:7]}"
            )
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    return "; ".join(parts) + more
