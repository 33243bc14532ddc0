"""ingest: read every data source, join them, write the snapshot (Parquet).

Sources: ``csv`` and ``parquet`` files of the repository, ``sql`` queries (the URL may hold
``${env:NAME}``, resolved here and never shown), and data sets bundled with scikit-learn.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from mlopsctl.errors import StageFailedError
from mlopsctl.spec.model import Join, Source
from mlopsctl.stages.base import StageContext
from mlopsctl.stages.frames import write_parquet

if TYPE_CHECKING:
    import pandas as pd

SKLEARN_DATASETS = ("breast_cancer", "iris", "wine", "diabetes", "digits")
_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def run(ctx: StageContext) -> dict[str, Any]:
    data = ctx.usecase.data
    frames = {name: read_source(ctx, name, source) for name, source in data.sources.items()}
    frame = combine(frames, data.join)
    write_parquet(frame, ctx.output(ctx.paths.snapshot))
    return {
        "rows": len(frame),
        "columns": len(frame.columns),
        "sources": {name: len(f) for name, f in frames.items()},
    }


def read_source(ctx: StageContext, name: str, source: Source) -> pd.DataFrame:
    import pandas as pd

    fmt = source.format
    if fmt in ("csv", "parquet"):
        if not source.path:
            raise StageFailedError(f"source '{name}': format {fmt} needs a path")
        path = ctx.input(source.path)
        if not path.is_file():
            raise StageFailedError(
                f"source '{name}': file {source.path} does not exist "
                "(is it tracked by DVC and pulled? try `dvc pull`)"
            )
        try:
            frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path, engine="pyarrow")
        except Exception as exc:  # ParserError, UnicodeDecodeError, ArrowInvalid, ...
            raise StageFailedError(f"source '{name}': cannot read {source.path}: {exc}") from exc
    elif fmt == "sql":
        frame = _read_sql(ctx, name, source)
    elif fmt == "sklearn":
        frame = _read_sklearn(name, source)
    else:
        raise StageFailedError(f"source '{name}': unknown format '{fmt}'")
    frame.columns = [str(c) for c in frame.columns]
    return frame.reset_index(drop=True)


def _read_sklearn(name: str, source: Source) -> pd.DataFrame:
    import sklearn.datasets

    if source.name not in SKLEARN_DATASETS:
        raise StageFailedError(
            f"source '{name}': unknown scikit-learn data set '{source.name}' "
            f"(one of: {', '.join(SKLEARN_DATASETS)})"
        )
    bunch = getattr(sklearn.datasets, f"load_{source.name}")(as_frame=True)
    frame: pd.DataFrame = bunch.frame.copy()
    return frame


# --- SQL --------------------------------------------------------------------------------------


def resolve_env(ctx: StageContext, text: str, where: str) -> tuple[str, list[str]]:
    """*text* with every ``${env:NAME}`` replaced; also the substituted values (secrets)."""
    secrets: list[str] = []
    missing = [m for m in _ENV.findall(text) if ctx.getenv(m) is None]
    if missing:
        names = ", ".join(dict.fromkeys(missing))
        raise StageFailedError(
            f"{where}: environment variable {names} is not set (the url is '{text}')"
        )

    def sub(match: re.Match[str]) -> str:
        value = ctx.getenv(match.group(1)) or ""
        if value:
            secrets.append(value)
        return value

    return _ENV.sub(sub, text), secrets


def _scrub(message: str, secrets: list[str], placeholder: str) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            message = message.replace(secret, placeholder)
    return message


def _read_sql(ctx: StageContext, name: str, source: Source) -> pd.DataFrame:
    import pandas as pd

    where = f"source '{name}'"
    if not source.url or not source.query:
        raise StageFailedError(f"{where}: format sql needs a url and a query")
    shown = source.url  # the unresolved text: the only form of the url ever shown
    url, secrets = resolve_env(ctx, source.url, where)
    secrets.append(url)
    try:
        if url.startswith("sqlite:"):
            db = _sqlite_path(ctx, url, where, shown)
            import sqlite3

            conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
            try:
                return pd.read_sql_query(source.query, conn)
            finally:
                conn.close()
        try:
            import sqlalchemy
        except ImportError as exc:
            raise StageFailedError(
                f"{where}: reading '{shown}' needs SQLAlchemy and a driver for the database "
                "(pip install 'mlopsctl[sql]'); only sqlite:/// URLs work without it"
            ) from exc
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect() as conn:
                return pd.read_sql_query(sqlalchemy.text(source.query), conn)
        finally:
            engine.dispose()
    except StageFailedError:
        raise
    except Exception as exc:  # any driver error: never show the resolved url or a secret
        detail = _scrub(f"{type(exc).__name__}: {exc}", secrets, shown)
        raise StageFailedError(f"{where}: query against '{shown}' failed: {detail}") from None


def sqlite_file(url: str) -> str | None:
    """The database file a ``sqlite:///path`` URL names, as written (absolute, or relative to
    the project root); None when *url* is not of that form."""
    rest = url[len("sqlite:") :]
    if not url.startswith("sqlite:") or not rest.startswith("///") or len(rest) == 3:
        return None
    return unquote(rest[3:].split("?", 1)[0])


def _sqlite_path(ctx: StageContext, url: str, where: str, shown: str) -> Path:
    """The database file of a ``sqlite:///path`` URL (relative paths: to the project root)."""
    raw = sqlite_file(url)
    if raw is None:
        raise StageFailedError(
            f"{where}: '{shown}' must be sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = Path(raw) if raw.startswith("/") else ctx.input(raw)
    if not path.is_file():
        raise StageFailedError(f"{where}: the database file of '{shown}' does not exist")
    return path


# --- joins ------------------------------------------------------------------------------------


def combine(frames: dict[str, pd.DataFrame], joins: tuple[Join, ...]) -> pd.DataFrame:
    """Apply *joins* in order; with one source and no join, that source as it is."""
    if not joins:
        if len(frames) != 1:
            raise StageFailedError(
                f"{len(frames)} sources ({', '.join(frames)}) but no data.join to combine them"
            )
        return next(iter(frames.values()))
    first = joins[0].left
    if first not in frames:
        raise StageFailedError(f"data.join[0]: unknown source '{first}'")
    result = frames[first]
    joined = [first]
    for i, join in enumerate(joins):
        where = f"data.join[{i}] ({join.left} + {join.right})"
        if join.left not in joined:
            raise StageFailedError(
                f"{where}: left source '{join.left}' is not joined yet "
                f"(joined so far: {', '.join(joined)})"
            )
        if join.right not in frames:
            raise StageFailedError(f"{where}: unknown source '{join.right}'")
        if join.right in joined:
            raise StageFailedError(f"{where}: source '{join.right}' is already joined")
        right = frames[join.right]
        keys = list(join.keys)
        for side, frame in (("the left side", result), (f"source '{join.right}'", right)):
            missing = [k for k in keys if k not in frame.columns]
            if missing:
                raise StageFailedError(
                    f"{where}: key column {', '.join(repr(k) for k in missing)} is not in {side}"
                )
        try:
            result = result.merge(
                right, on=keys, how=join.how, sort=False, suffixes=("", f"_{join.right}")
            )
        except (ValueError, TypeError) as exc:  # e.g. int keys against str keys
            raise StageFailedError(f"{where}: cannot join on {keys}: {exc}") from exc
        joined.append(join.right)
    unjoined = [n for n in frames if n not in joined]
    if unjoined:
        raise StageFailedError(
            f"source {', '.join(repr(n) for n in unjoined)} is not combined by data.join"
        )
    return result.reset_index(drop=True)
