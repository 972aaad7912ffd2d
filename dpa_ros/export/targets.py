"""Overwrite policy and all-or-nothing directory output for the exporters.

Single files are written with :func:`dpa_ros.core.fileio.atomic_write`. A directory export (``gazebo/``,
``obj_world/``) is built inside a hidden temporary sibling and renamed into place only when
complete, so a failing writer leaves neither a partial directory nor temporary files.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from dpa_ros.export.options import ExportError


def check_target(path: Path, overwrite: bool) -> None:
    """Refuse an existing file or a non-empty directory at ``path`` unless ``overwrite``."""
    if overwrite or not path.exists():
        return
    if path.is_dir() and not any(path.iterdir()):
        return
    kind = "directory" if path.is_dir() else "file"
    raise ExportError(f"{path} exists (non-empty {kind}); pass overwrite=True (--force) to replace it")


@contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``target`` (removed first).

    On an exception the temporary directory is deleted and ``target`` is left untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.new.", dir=target.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(stage, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_directory(target: Path, write: Callable[[Path], list[Path]]) -> list[Path]:
    """Run ``write(stage)`` in a :func:`staged_directory` for ``target``; return the written files'
    final paths (under ``target``)."""
    with staged_directory(target) as stage:
        files = write(stage)
    return [target / f.relative_to(stage) for f in files]
