"""Owner-only files: everything Sluice keeps in its data directory is 0600, every directory there 0700.

The database, the usage spool, the master key, the JWT secret, UI sessions and the metrics files all hold secrets
or usage. Files Sluice creates itself are created owner-only from the start (never created, then narrowed);
files other libraries create there (SQLite's WAL and shared-memory files follow the database file's mode; the
Prometheus multiprocess files and NiceGUI's session files follow the process umask, which ``sluice serve`` sets to
``077``). On start-up :func:`tighten_tree` narrows whatever an earlier version left readable to others.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
OWNER_ONLY_UMASK = 0o077
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
METRICS_DIR = "prometheus"  # the Prometheus multiprocess files of `sluice serve --workers N`
UI_SESSIONS_DIR = "ui-sessions"  # NiceGUI's session storage (refresh tokens)
OWN_SUBDIRECTORIES = (METRICS_DIR, UI_SESSIONS_DIR)


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) a directory only its owner may enter."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _narrow(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists and only its owner may read or write it (an empty file is created if missing)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)
    _narrow(path, FILE_MODE)
    return path


def private_database(path: Path) -> Path:
    """A SQLite database file, owner-only before SQLite opens it (its WAL and shared-memory files take its mode)."""
    private_file(path)
    for suffix in SQLITE_SIDECARS:
        sidecar = path.with_name(path.name + suffix)
        if sidecar.exists():
            _narrow(sidecar, FILE_MODE)
    return path


def write_private(path: Path, text: str) -> None:
    """Create ``path`` with ``text``, owner-only from the first byte; FileExistsError if it exists."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def tighten_tree(root: Path, own_subdirectories: tuple[str, ...] = ()) -> None:
    """Narrow ``root`` to 0700, the files directly in it to 0600, and everything under ``own_subdirectories``
    likewise. Other subdirectories are left alone: a data directory set to somewhere shared is not ours to walk.
    Symbolic links are never followed or changed."""
    if not root.is_dir() or root.is_symlink():
        return
    _narrow(root, DIR_MODE)
    for entry in root.iterdir():
        if entry.is_file() and not entry.is_symlink():
            _narrow(entry, FILE_MODE)
    for name in own_subdirectories:
        sub = root / name
        if not sub.is_dir() or sub.is_symlink():
            continue
        _narrow(sub, DIR_MODE)
        for directory, subdirectories, files in os.walk(sub):
            for child in subdirectories:
                _narrow(Path(directory, child), DIR_MODE)
            for child in files:
                _narrow(Path(directory, child), FILE_MODE)


def owner_only_umask() -> None:
    """Files this process (and the workers it starts) creates are owner-only, whoever creates them."""
    os.umask(OWNER_ONLY_UMASK)


def _narrow(path: Path, mode: int) -> None:
    """chmod unless it is a link or not ours (then there is nothing we may do about it)."""
    with contextlib.suppress(OSError):
        if path.is_symlink():
            return
        if (path.stat().st_mode & 0o777) != mode:
            path.chmod(mode)
