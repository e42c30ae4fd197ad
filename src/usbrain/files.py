"""Output paths: claimed when a run starts, written whole, readable by the user's group.

Researchers run usbrain as array jobs writing into shared folders, so three promises hold for
every file or folder it writes:

* **Claim, then write.** A run claims its output path before any work (:func:`claim`): an
  exclusive ``flock`` on a lock file beside it, ``.NAME.lock``. A second run that finds the claim
  held stops at once (:class:`ClaimedError`); one that finds the output already there stops too,
  unless ``overwrite``. The kernel drops a lock when its process ends, however it ends, so a
  killed run never blocks the next one.
* **Whole or not at all.** The result is written into a hidden partial sibling
  (``.NAME.partial-*``) and renamed into place (:func:`atomic_dir`, :func:`atomic_file`); with
  ``overwrite`` an old result is replaced only once the new one is complete. Partial siblings a
  killed run left behind are removed, with a warning, by the next run that claims the path: it
  holds the claim, so no live run can be writing them.
* **Modes as the umask says.** Partial files and folders are created like ordinary ones (0666 and
  0777 less the umask: 0644 / 0755 under 0022), not 0600 / 0700 like :mod:`tempfile`'s.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import logging
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from usbrain.errors import OutputExistsError

log = logging.getLogger(__name__)


class ClaimedError(OutputExistsError):
    """Another live run holds the claim on an output path."""


@dataclass
class _Claim:
    fd: int
    lock: Path
    made: Path | None = None  # the outermost parent folder the claim created, if any
    depth: int = 1


_HELD: dict[Path, _Claim] = {}  # the claims this process holds, by absolute path


def _lock_path(path: Path) -> Path:
    return path.parent / f".{path.name}.lock"


def _partial_prefix(path: Path) -> str:
    return f".{path.name}.partial-"


def _holder(lock: Path) -> str:
    with contextlib.suppress(OSError):
        text = lock.read_text().strip()
        if text:
            return f" ({text})"
    return ""


def _acquire(path: Path) -> _Claim:
    """Lock ``.NAME.lock`` exclusively, without waiting; raise :class:`ClaimedError` if held."""
    lock = _lock_path(path)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise ClaimedError(
                f"{path}: another usbrain run is writing it{_holder(lock)}; wait for it to "
                "finish or choose another output"
            ) from None
        # The holder before us may have removed the lock file after we opened it: a lock on
        # that orphaned file guards nothing, so take the file that is there now.
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
                return _Claim(fd, lock)
        os.close(fd)


def _discard(partial: Path) -> None:
    """Remove a partial file or folder, if it is there."""
    if partial.is_dir() and not partial.is_symlink():
        shutil.rmtree(partial, ignore_errors=True)
    else:
        partial.unlink(missing_ok=True)


def _exists(path: Path) -> OutputExistsError:
    return OutputExistsError(f"{path}: already exists; pass --overwrite to replace it")


def _remove_leftovers(path: Path) -> None:
    pattern = glob.escape(str(path.parent / _partial_prefix(path))) + "*"
    for leftover in map(Path, glob.glob(pattern)):
        log.warning("removing %s, left by a run that was killed while writing %s", leftover, path)
        _discard(leftover)


@contextlib.contextmanager
def claim(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Hold ``path`` for this run; refuse it if another run holds it, or if it exists and not
    ``overwrite``. Nested claims of one path in one process share the outer one.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "result"
    >>> with claim(out) as held:
    ...     held == out
    True
    """
    path = Path(path)
    key = path.absolute()
    held = _HELD.get(key)
    if held is None:
        made = next((p for p in reversed(key.parents) if not p.exists()), None)
        path.parent.mkdir(parents=True, exist_ok=True)
        held = _HELD[key] = _acquire(path)
        held.made = made
        try:
            _remove_leftovers(path)
        except BaseException:
            _release(key)
            raise
    else:
        held.depth += 1
    try:
        if path.exists() and not overwrite:
            raise _exists(path)
        yield path
    finally:
        _release(key)


def _release(key: Path) -> None:
    held = _HELD[key]
    held.depth -= 1
    if held.depth == 0:
        del _HELD[key]
        # Unlinked while still locked: a run that opened the old file retries on a new one.
        held.lock.unlink(missing_ok=True)
        os.close(held.fd)
        if held.made is not None and not key.exists():  # refused or failed: leave no trace
            for folder in [key.parent, *key.parent.parents]:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only empty ones go
                if folder == held.made:
                    break


def _new_sibling(path: Path, folder: bool) -> Path:
    """A fresh partial sibling of ``path``, created with the modes the umask gives."""
    suffix = "" if folder else "".join(path.suffixes)  # writers infer formats from it (.nii.gz)
    while True:
        tmp = path.parent / f"{_partial_prefix(path)}{secrets.token_hex(4)}{suffix}"
        try:
            if folder:
                tmp.mkdir(0o777)
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def put_in_place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename the finished ``tmp`` to ``path``; an old ``path`` goes only after (``overwrite``)."""
    if not overwrite:
        if path.exists():  # written by something that does not claim its outputs
            raise _exists(path)
        os.replace(tmp, path)
        return
    if path.exists() and path.is_dir() != tmp.is_dir():
        kind = "folder" if tmp.is_dir() else "file"
        raise OutputExistsError(f"{path}: exists and is not a {kind}; remove it or choose another")
    if tmp.is_dir() and path.exists():
        # A folder cannot replace a full one in one rename: move the old aside first.
        old = _new_sibling(path, folder=True)
        os.replace(path, old / path.name)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)


def staging_path(path: str | Path) -> Path:
    """The partial sibling that a writer filling its output over a long run (training) uses
    while an old ``path`` stays in place; one fixed name, so every rank of a distributed run
    finds it. Hold the claim on ``path`` while using it; :func:`put_in_place` ends it."""
    path = Path(path)
    return path.parent / f"{_partial_prefix(path)}staged"


@contextlib.contextmanager
def _atomic(path: str | Path, overwrite: bool, folder: bool) -> Iterator[Path]:
    with claim(path, overwrite) as path:
        tmp = _new_sibling(path, folder)
        try:
            yield tmp
            put_in_place(tmp, path, overwrite)
        finally:
            _discard(tmp)


@contextlib.contextmanager
def atomic_file(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it takes the place of ``path``.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_file(out) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> out.read_text()
    'hello'
    """
    with _atomic(path, overwrite, folder=False) as tmp:
        yield tmp


@contextlib.contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it takes the place of ``path``.

    An existing ``path`` (only allowed with ``overwrite``) is removed after the new folder is
    complete, so a failure at any point leaves the old one intact.
    """
    with _atomic(path, overwrite, folder=True) as tmp:
        yield tmp
