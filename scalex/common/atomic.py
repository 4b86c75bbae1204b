"""Atomic file writes: every file scalex writes appears whole or not at all.

One mechanism for results, store members, markers, manifests, plots and reports: write to a
unique temporary file in the destination directory, flush it to disk, give it the mode a plain
``open()`` would (honouring the umask, unlike `tempfile.mkstemp`'s 0600), and rename it over the
destination. A failed write removes its temporary file; a full disk is reported as such, with
the destination's name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TMP_SUFFIX", "atomic_path", "remove_stale_temporaries", "write_bytes", "write_text"]

#: suffix of the temporary files, so that a later run can recognise and remove stale ones.
TMP_SUFFIX = ".tmp"
_UMASK: int | None = None
_UMASK_LOCK = threading.Lock()


def _file_mode() -> int:
    """0o666 & ~umask: the mode `open()` gives a new file."""
    global _UMASK
    with _UMASK_LOCK:
        if _UMASK is None:
            _UMASK = os.umask(0o022)
            os.umask(_UMASK)
    return 0o666 & ~_UMASK


def _disk_full(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # netCDF4/HDF5 report a full disk as a generic "HDF error"
    return "HDF error" in str(err) or "No space left" in str(err)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; rename it over ``path`` on success.

    The temporary name is ``.<name>.<random>.tmp<suffix>`` (``suffix`` for writers that pick
    the format from the extension). The body writes the temporary file by any means
    (netCDF4, matplotlib, bokeh, ...). On an exception the temporary file is removed and the
    exception propagates; a full disk becomes
    ``OSError(ENOSPC, "<path>: no space left on device ...")``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX + suffix,
                                dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if _disk_full(err):
            raise OSError(errno.ENOSPC, f"{path}: no space left on device while writing it; "
                                        f"nothing was written ({err})") from err
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Atomically write ``text`` to ``path``."""
    return write_bytes(path, text.encode(encoding))


def remove_stale_temporaries(directory: str | os.PathLike[str], pattern: str = "*") -> int:
    """Remove temporary files ``.<pattern>.*.tmp*`` left in ``directory`` by killed writers.

    Returns how many were removed. Only call this where no other live writer can be using the
    directory's temporaries (e.g. for files older than a run's start).
    """
    removed = 0
    for tmp in Path(directory).glob(f".{pattern}.*{TMP_SUFFIX}*"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed += 1
    return removed
