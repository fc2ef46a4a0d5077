"""Files verified by a sha256 kept beside them (``<file>.sha256``, the format of ``sha256sum``): written
atomically as a pair under a folder lock, and read only when the bytes match (the MNIST cache)."""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from ._atomic import atomic_write


class CacheIntegrityError(RuntimeError):
    """A cache file without its sha256 digest, or whose bytes do not match it: it is not loaded."""


def digest_path(path: Path) -> Path:
    """Where the sha256 of a cache file is kept: ``<file>.sha256``."""
    return path.with_name(path.name + ".sha256")


@contextlib.contextmanager
def _folder_lock(folder: Path, exclusive: bool):
    """An advisory lock on the folder itself (no lock file): a cache and its digest are written and
    read as a pair, even by two processes at once. A no-op where flock is missing (Windows)."""
    try:
        import fcntl
        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _read_digest(path: Path) -> str:
    dpath = digest_path(path)
    if not dpath.exists():
        raise CacheIntegrityError(f"{path} has no sha256 digest beside it ({dpath.name}): not loaded, "
                                  "rebuilt from the next source")
    try:
        digest = dpath.read_text(encoding="ascii").split()[0].lower()
        int(digest, 16)
    except (OSError, UnicodeDecodeError, IndexError, ValueError) as e:
        raise CacheIntegrityError(f"{dpath} is unreadable or not a sha256 digest ({e}): {path} not loaded, "
                                  "rebuilt from the next source") from None
    if len(digest) != 64:
        raise CacheIntegrityError(f"{dpath} does not hold a sha256 digest: {path} not loaded, rebuilt from the next source")
    return digest


def write_verified(path: Path, blob: bytes) -> None:
    """Write ``blob`` to ``path`` and its sha256 to ``<path>.sha256``, each atomically, under a folder lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = f"{hashlib.sha256(blob).hexdigest()}  {path.name}\n".encode("ascii")
    with _folder_lock(path.parent, exclusive=True):
        atomic_write(path, lambda f: f.write(blob))
        atomic_write(digest_path(path), lambda f: f.write(line))


def read_verified(path: Path) -> bytes:
    """The bytes of ``path`` after checking them against ``<path>.sha256`` (CacheIntegrityError otherwise)."""
    path = Path(path)
    with _folder_lock(path.parent, exclusive=False):
        expected = _read_digest(path)
        blob = path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != expected:
        raise CacheIntegrityError(f"{path} has sha256 {actual[:16]}..., its digest file says {expected[:16]}...: "
                                  "the cache was altered or corrupted; not loaded, rebuilt from the next source")
    return blob
