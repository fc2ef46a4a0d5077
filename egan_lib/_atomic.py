"""One atomic-write helper for every file egan_lib writes (checkpoints, results JSON, caches, notebooks).

Files get the process's normal permissions, ``0o666 & ~umask`` (0o644 under the usual umask 022),
as ``open()`` would give them: ``tempfile.mkstemp`` creates its file with mode 0600, so the temp
file is chmod-ed before it is renamed into place.
"""
from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux: /proc/self/status);
    elsewhere set and restored at once under a lock (os.umask has no read-only form)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0o666 minus the umask."""
    return 0o666 & ~current_umask()


def set_default_mode(path: str | os.PathLike) -> None:
    """chmod a file made by ``mkstemp`` (mode 0600) to the process's normal file mode."""
    os.chmod(path, default_file_mode())


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(f)`` on a binary temp file in the target folder, fsync, give it the normal file mode
    (``0o666 & ~umask``), then rename it onto ``path``; an interrupted write never leaves a half file
    under the real name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        set_default_mode(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
