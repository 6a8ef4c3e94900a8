"""Writing the user's files: atomically, and with one wording for every failure.

Every file resgraph writes goes through :func:`atomic_write_bytes` (or ``_text``): a reader
sees the old file or the new one, never half of one. Every way a write can fail (the parent
is a file, a read-only folder, a full disk, ...) becomes :class:`OutputError`
(``PATH: cannot write: REASON``), which the command line prints as one ``error:`` line.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from resgraph.errors import OutputError

__all__ = ["OutputError", "atomic_write_bytes", "atomic_write_text", "check_output", "output_error"]

_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def output_error(path: str | os.PathLike[str], exc: OSError) -> OutputError:
    """The :class:`OutputError` for an ``OSError`` raised while writing ``path``: names the
    path and the operating system's reason (a parent that is a file is said so)."""
    if isinstance(exc, OutputError):
        return exc
    path = Path(path)
    blocker = _file_in_the_way(path)
    if blocker is not None:
        reason = f"{blocker} is a file, not a folder"
    elif path.is_dir():
        reason = "it is a folder"
    else:
        reason = _REASONS.get(exc.errno or 0) or exc.strerror or str(exc) or type(exc).__name__
    return OutputError(path, reason)


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest ancestor of ``path`` that exists and is not a folder, if any."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_output(path: str | os.PathLike[str]) -> None:
    """Raise :class:`OutputError` now if ``path`` clearly cannot be written (a parent is a
    file, the nearest existing folder is not writable, ``path`` is a folder), so that a
    command can refuse before it does any work. The write itself may still fail (a full
    disk); :func:`atomic_write_bytes` reports that the same way."""
    path = Path(path)
    blocker = _file_in_the_way(path)
    if blocker is not None:
        raise OutputError(path, f"{blocker} is a file, not a folder")
    if path.is_dir():
        raise OutputError(path, "it is a folder")
    folder = next((p for p in path.parents if p.exists()), Path("."))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(path, f"{folder} is not writable (permission denied)")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync it, rename it into place, and fsync
    the folder so the rename itself survives a crash. Missing folders are created. Any
    failure raises :class:`OutputError` and leaves ``path`` as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise output_error(path, exc) from None
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory file descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
