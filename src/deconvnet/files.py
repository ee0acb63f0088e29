"""Atomic file writing: readers see the old file or the new one, never half of one.

``with atomic_path(path) as tmp:`` hands out a temporary name in the same folder; on success the file is
made readable (mkstemp creates it private) and renamed over ``path``; on any error it is removed. Used by
checkpoints, logs, results, figures and the book's pages.

``check_folder(path, what, fix)`` refuses, before any work, a folder that cannot be made or written to.

``work_root()`` is where generated data (``data/``) and trained models (``runs/``) live.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write; renamed onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=path.suffix, prefix=f".{path.stem}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_folder(path: str | Path, what: str, fix: str) -> Path:
    """``path`` as a folder that can be created (if missing) and written to; else one clear error.

    Checks without creating anything: a file in the folder's place or above it raises NotADirectoryError,
    a folder (or nearest existing parent) without write permission PermissionError. ``what`` names the
    folder in the message (e.g. "--out segment"), ``fix`` says what to do. Call it before the slow part.
    """
    path = Path(path)
    for existing in (path, *path.absolute().parents):
        if not existing.exists():
            continue
        if not existing.is_dir():
            where = "is a file" if existing == path else f"cannot be made: {existing} is a file"
            raise NotADirectoryError(f"{what} {where}, not a folder; {fix}")
        if not os.access(existing, os.W_OK | os.X_OK):
            where = "is not writable" if existing == path else f"cannot be made: {existing} is not writable"
            raise PermissionError(f"{what} {where} (permission denied); {fix}")
        return path
    return path


HOME_ENV = "DECONVNET_HOME"  # the folder for data/ and runs/: another disk, or a shared cache of models


def work_root() -> Path:
    """Where ``data/`` and ``runs/`` live: ``DECONVNET_HOME`` if set, else this checkout (the folder with
    ``pyproject.toml`` above ``src/``), else the working directory (a package installed without a checkout)."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser().absolute()
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()
