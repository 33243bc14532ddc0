"""Canonical, byte-reproducible skops model files, and safe loading.

``skops.io.dump`` is not byte-reproducible. What varies between two dumps of the same fitted
model (skops 0.16, found by experiment and by reading ``skops/io``):

* zip member names: arrays are stored as ``<id(obj)>.npy`` (``<id>.npz`` for scipy sparse
  matrices, ``<uuid4>.bin`` for bytes), so they change with every dump;
* the ``"__id__"`` field that every node of ``schema.json`` carries is ``id(obj)`` too; the
  loader uses it only to share one object between several references (its memo);
* zip entries carry the write time (and, for ``.npz`` members, the zip nested inside them too);
* the order of a set's items follows string hashing, which changes per process
  (``PYTHONHASHSEED``).

:func:`save_model` rewrites the dump canonically: ``__id__`` values become sequential numbers in
traversal order (identity of mutable objects is kept, the ids of immutable leaves - JSON
primitives, types, functions, dtypes - are dropped because the loader never needs them), data
members are renamed by content in traversal order (``000001.npy``...; equal contents share one
member), set items are sorted, node keys are sorted (but never the items of a stored dict: their
order is the dict's order and lines up with its ``key_types``), ``schema.json`` is written with
fixed separators, and the zip is written with sorted members, a fixed date
(1980-01-01 00:00:00), fixed permissions and ``ZIP_STORED`` (no zlib: its output can differ
between zlib builds, e.g. zlib-ng, while stored bytes cannot).

:func:`load_model` never loads a type outside scikit-learn, numpy, scipy or the allowed
estimator modules.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlopsctl.errors import StageFailedError
from mlopsctl.stages.base import atomic_write_bytes

#: zip entry date: the earliest a zip can hold; the same for every entry of every file.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
#: regular file, rw-r--r--
ZIP_EXTERNAL_ATTR = 0o100644 << 16
ZIP_CREATE_SYSTEM = 3  # unix
#: module prefixes always trusted when loading (plus the allowed estimator modules)
TRUSTED_MODULE_PREFIXES = ("sklearn", "numpy", "scipy")

# Nodes whose value is immutable and rebuilt by value (or looked up by name): their "__id__"
# is never needed to share an object, and whether two of them were the same Python object
# (interned strings, cached ints) is an accident of the process that wrote the file.
_IMMUTABLE_LOADERS = frozenset({"JsonNode", "TypeNode", "FunctionNode", "DTypeNode", "SliceNode"})


def save_model(model: Any, path: Path) -> None:
    """Write *model* to *path* as a canonical skops file (same model -> same bytes)."""
    import skops.io

    try:
        raw = skops.io.dumps(model)
    except Exception as exc:  # skops raises TypeError / UnsupportedTypeException
        raise StageFailedError(
            f"cannot save the model with skops ({type(model).__name__}): {exc}"
        ) from exc
    atomic_write_bytes(path, canonicalize(raw))


def canonicalize(raw: bytes) -> bytes:
    """The canonical form of the skops file *raw* (idempotent)."""
    with zipfile.ZipFile(io.BytesIO(raw)) as src:
        members = {info.filename: src.read(info) for info in src.infolist()}
    schema = json.loads(members.pop("schema.json"))
    data = {name: _canonical_member(name, content) for name, content in members.items()}
    canon = _Canonicalizer(data)
    schema = canon.node(schema)
    unused = set(data) - set(canon.renamed)
    if unused:  # a member schema.json does not reference: skops never writes one
        raise StageFailedError(f"unexpected members in the skops file: {sorted(unused)}")
    text = json.dumps(schema, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    entries = {new: data[old] for old, new in canon.renamed.items()}
    entries["schema.json"] = text.encode("ascii")
    return _write_zip(sorted(entries.items()))


def _write_zip(entries: Iterable[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = ZIP_EXTERNAL_ATTR
            info.create_system = ZIP_CREATE_SYSTEM
            zf.writestr(info, content)
    return buffer.getvalue()


def _canonical_member(name: str, content: bytes) -> bytes:
    if name.endswith(".npz"):  # scipy.sparse.save_npz: a zip inside the zip, with dates
        with zipfile.ZipFile(io.BytesIO(content)) as inner:
            items = sorted((i.filename, inner.read(i)) for i in inner.infolist())
        return _write_zip(items)
    return content


class _Canonicalizer:
    def __init__(self, data: dict[str, bytes]) -> None:
        self.data = data
        self.ids: dict[int, int] = {}
        self.renamed: dict[str, str] = {}  # old member name -> new
        self.by_content: dict[str, str] = {}  # content digest + suffix -> new name

    def node(self, state: Any) -> Any:
        """Canonicalise one node state (a dict with ``__loader__``) or a plain JSON value."""
        if isinstance(state, list):
            return [self.node(v) for v in state]
        if not isinstance(state, dict):
            return state
        if "__loader__" not in state:  # a plain mapping inside a node (e.g. MethodNode content)
            return {k: self.node(state[k]) for k in sorted(state)}
        loader = state["__loader__"]
        out: dict[str, Any] = {}
        for key in sorted(state):
            value = state[key]
            if key == "__id__":
                if loader in _IMMUTABLE_LOADERS or not isinstance(value, int):
                    continue
                out[key] = self.ids.setdefault(value, len(self.ids) + 1)  # never 0: falsy
            elif key == "file" and isinstance(value, str):
                out[key] = self.member(value)
            elif key == "content" and loader == "DictNode" and isinstance(value, dict):
                # insertion order is the dict's order and matches "key_types": keep it
                out[key] = {k: self.node(v) for k, v in value.items()}
            elif key == "content" and loader == "SetNode" and isinstance(value, list):
                out[key] = [self.node(v) for v in sorted(value, key=_sort_key)]
            else:
                out[key] = self.node(value)
        return out

    def member(self, old: str) -> str:
        if old in self.renamed:
            return self.renamed[old]
        if old not in self.data:
            raise StageFailedError(f"the skops file references a missing member {old!r}")
        suffix = Path(old).suffix
        digest = hashlib.sha256(self.data[old]).hexdigest() + suffix
        new = self.by_content.get(digest)
        if new is None:
            new = f"{len(self.by_content) + 1:06d}{suffix}"
            self.by_content[digest] = new
        self.renamed[old] = new
        return new


def _sort_key(state: Any) -> str:
    """Order set items by their content, ignoring object ids."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "__id__"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(state), sort_keys=True)


def load_model(path: Path, allowed_modules: Iterable[str] = ()) -> Any:
    """Load a skops model file, trusting only scikit-learn, numpy, scipy and *allowed_modules*.

    Any other type in the file is refused (never loaded) with a :class:`StageFailedError` that
    lists it.
    """
    import skops.io

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise StageFailedError(f"cannot read the model file {path}: {exc.strerror}") from exc
    prefixes = tuple(TRUSTED_MODULE_PREFIXES) + tuple(allowed_modules)
    try:
        untrusted = skops.io.get_untrusted_types(data=raw)
    except Exception as exc:  # a truncated or foreign file
        raise StageFailedError(f"{path} is not a valid skops model file: {exc}") from exc
    refused = [t for t in untrusted if not _module_allowed(t, prefixes)]
    if refused:
        raise StageFailedError(
            f"refusing to load {path}: it contains types outside the trusted modules "
            f"({', '.join(prefixes)}): {', '.join(refused)}"
        )
    try:
        return skops.io.loads(raw, trusted=untrusted)
    except Exception as exc:
        raise StageFailedError(f"cannot load the model file {path}: {exc}") from exc


def _module_allowed(type_name: str, prefixes: Iterable[str]) -> bool:
    return any(type_name.startswith(prefix + ".") for prefix in prefixes)
