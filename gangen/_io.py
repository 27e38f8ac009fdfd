"""Atomic file writes shared by the study runner, plotting and the classifier cache.

A file is written to a temporary file in the same folder, flushed to disk, then renamed over
the target (``os.replace``), so a reader (or a resumed run after ``kill -9``) never sees a
partial file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text"]




def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give: 0o666 less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, then ``os.replace``.

    Readers see either the old file or the complete new one, never a partial file; on
    any error the temp file is removed and an existing ``path`` is left untouched.

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = atomic_write_bytes(pathlib.Path(d) / "x.txt", b"hello")
    ...     (p.read_bytes(), sorted(q.name for q in pathlib.Path(d).iterdir()))
    (b'hello', ['x.txt'])
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes; got {type(data).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())  # mkstemp creates 0600; results are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str; got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode("utf-8"))
