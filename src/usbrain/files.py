"""Atomic output: every file or folder usbrain writes appears whole or not at all.

A writer produces a temporary sibling (same folder, hence same file system) and renames it into
place with :func:`os.replace`, which is atomic on POSIX. Existing outputs are refused unless the
caller passes ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from usbrain.errors import OutputExistsError


def check_writable(path: str | Path, overwrite: bool) -> Path:
    """Refuse an existing ``path`` unless ``overwrite``; return it as a ``Path``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists; pass --overwrite to replace it")
    return path


def _partial_name(path: Path) -> str:
    # Keeps the real suffix last so writers that infer the format (nibabel: .nii.gz) still work.
    return f".{path.name.split('.')[0]}.partial-"


@contextlib.contextmanager
def atomic_file(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_file(out) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> out.read_text()
    'hello'
    """
    path = check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=_partial_name(path), suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it takes the place of ``path``.

    An existing ``path`` (only allowed with ``overwrite``) is removed after the new folder is
    complete, so a failure at any point leaves the old one intact.
    """
    path = check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_partial_name(path), dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_partial_name(path) + "old-", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
