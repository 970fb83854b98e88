"""Reading and writing policy files, with errors that name the file and the problem.

Two formats: a JSON document for policies that are configuration plus a little state (rules,
random, noop, oracle), and a NumPy ``.npz`` archive (no pickles) for the bandits' matrices.
Both carry a ``kind`` (which policy class wrote it) and a ``format`` number, checked on load.
SB3 models keep SB3's own ``.zip`` format (see :mod:`policies.sb3`).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from policies.base import PolicyFileError

FORMAT = 1


def _existing(path: str | Path, what: str) -> Path:
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{what} file {str(file)!r} does not exist")
    if not file.is_file():
        raise PolicyFileError(f"{what} path {str(file)!r} is not a file")
    return file


def _atomic_write(path: Path, write: Any) -> Path:
    """Write through a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def file_digest(path: str | Path, length: int = 12) -> str:
    """``sha256:<first length hex digits>`` of a file: a content-derived version string."""
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:length]


def save_json(path: str | Path, kind: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` with its ``kind`` and ``format`` as JSON at ``path``."""
    document = {"kind": kind, "format": FORMAT, **payload}
    text = json.dumps(document, indent=2, sort_keys=True)
    return _atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def load_json(path: str | Path, kind: str) -> dict[str, Any]:
    """Read a JSON policy file written by :func:`save_json` for ``kind``."""
    file = _existing(path, f"{kind} policy")
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PolicyFileError(f"{kind} policy file {str(file)!r} is corrupt: {error}") from None
    _check_header(document, file, kind)
    return dict(document)


def save_npz(
    path: str | Path, kind: str, meta: dict[str, Any], arrays: dict[str, NDArray[Any]]
) -> Path:
    """Write ``arrays`` and JSON ``meta`` into one ``.npz`` archive at ``path``."""
    header = json.dumps({"kind": kind, "format": FORMAT, **meta}, sort_keys=True)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.savez(handle, **{"__meta__": np.array(header), **arrays})  # type: ignore[arg-type]

    return _atomic_write(Path(path), write)


def load_npz(
    path: str | Path, kind: str, names: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """Read an archive written by :func:`save_npz`: (meta, the arrays called ``names``)."""
    file = _existing(path, f"{kind} policy")
    try:
        with np.load(file, allow_pickle=False) as archive:
            meta = json.loads(str(archive["__meta__"]))
            _check_header(meta, file, kind)
            missing = [name for name in names if name not in archive.files]
            if missing:
                raise PolicyFileError(
                    f"{kind} policy file {str(file)!r} is corrupt: arrays {missing} missing"
                )
            arrays = {name: archive[name] for name in names}
    except PolicyFileError:
        raise
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise PolicyFileError(
            f"{kind} policy file {str(file)!r} is corrupt or not an .npz archive: {error}"
        ) from None
    return meta, arrays


def _check_header(document: object, file: Path, kind: str) -> None:
    if not isinstance(document, dict) or "kind" not in document:
        raise PolicyFileError(f"{kind} policy file {str(file)!r} has no 'kind' field")
    if document["kind"] != kind:
        raise PolicyFileError(
            f"policy file {str(file)!r} holds a {document['kind']!r} policy, not {kind!r}"
        )
    if document.get("format") != FORMAT:
        raise PolicyFileError(
            f"{kind} policy file {str(file)!r} has format {document.get('format')!r}; "
            f"this version reads format {FORMAT}"
        )
