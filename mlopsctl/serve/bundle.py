"""A deployment bundle loaded for serving: manifest, signature, model, request schema.

Loading checks that the bundle is whole (the model and signature files hash to what the
manifest says), so a bundle caught halfway through being replaced is refused, never served.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsctl.compile.layout import BUNDLE_MANIFEST, BUNDLE_MODEL, BUNDLE_SIGNATURE
from mlopsctl.errors import MlopsctlError
from mlopsctl.serve.requests import RequestSchema
from mlopsctl.stages.modelio import load_model
from mlopsctl.stages.scoring import Signature


class BundleError(MlopsctlError):
    """The bundle is missing, incomplete or does not load."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]
    signature_doc: dict[str, Any]
    signature: Signature
    model: Any
    schema: RequestSchema

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", ""))

    @property
    def usecase(self) -> str:
        return str(self.manifest.get("usecase", ""))


def manifest_stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when the manifest is replaced (inode, size, mtime); None if absent."""
    try:
        st = (path / BUNDLE_MANIFEST).stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads((path / BUNDLE_MANIFEST).read_text("utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"{path / BUNDLE_MANIFEST} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {path / BUNDLE_MANIFEST}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        raise BundleError(f"{path / BUNDLE_MANIFEST} is not a deployment manifest")
    return doc


def load_bundle(path: Path, allowed_modules: tuple[str, ...] = ("sklearn",)) -> Bundle:
    """Load and check the bundle in *path*; :class:`BundleError` says what is wrong."""
    manifest = read_manifest(path)
    files: dict[str, Any] = manifest["files"]
    blobs: dict[str, bytes] = {}
    for name in (BUNDLE_MODEL, BUNDLE_SIGNATURE):
        try:
            blobs[name] = (path / name).read_bytes()
        except OSError as exc:
            raise BundleError(f"cannot read {path / name}: {exc.strerror}") from exc
        digest = hashlib.sha256(blobs[name]).hexdigest()
        if files.get(name) != digest:
            raise BundleError(
                f"{path / name} does not match the manifest (sha256 {digest[:12]}, "
                f"manifest {str(files.get(name))[:12]}): the bundle is incomplete"
            )
    try:
        signature_doc = json.loads(blobs[BUNDLE_SIGNATURE])
        signature = Signature.from_json(signature_doc)
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"the signature in {path} is not valid: {exc}") from exc
    try:
        # the estimator class is trusted only when its module is allowed, whoever names it
        estimator = str(manifest.get("estimator") or "")
        model = load_model(path / BUNDLE_MODEL, estimator, allowed_modules)
    except MlopsctlError as exc:
        raise BundleError(exc.message) from exc
    return Bundle(
        path=path,
        manifest=manifest,
        signature_doc=signature_doc,
        signature=signature,
        model=model,
        schema=RequestSchema(signature),
    )
