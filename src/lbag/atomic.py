"""Atomic file output: the one place where lbag writes a file so that a crash or Ctrl-C never leaves a
half-written checkpoint, image or report behind.

The data goes to a temporary file in the destination folder, which is flushed to disk (fsync) and then
renamed over the destination (``os.replace`` is atomic on POSIX and Windows within one file system), so
the rename never exposes a file whose data is still in flight.

Temporary files are created with mode 0666 minus the umask (0644 under the usual umask 022), like any
other new file, and are named ``.<stem>.lbagtmp-<pid>-<token><suffix>``: a run killed with ``kill -9``
leaves one behind, and the next run removes it (:func:`remove_stale_temps`: only files whose writing
process no longer exists). Every failure to write (permission, read-only file system, full disk) is a
:class:`WriteError` naming the destination.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["WriteError", "atomic_path", "check_output_dir", "check_output_file", "remove_stale_temps",
           "write_json", "write_text"]

_TEMP_TAG = ".lbagtmp-"
_TEMP_RE = re.compile(r"^\..*\.lbagtmp-(\d+)-[0-9a-f]+(\.[^/]*)?$")


class WriteError(OSError):
    """An output file or folder cannot be written; ``str()`` is one line naming the path and the reason."""

    def __init__(self, path: str | os.PathLike, cause: OSError | str):
        reason = cause if isinstance(cause, str) else (cause.strerror or str(cause) or type(cause).__name__)
        code = None if isinstance(cause, str) else cause.errno
        super().__init__(code, reason, str(path))
        self.path = Path(path)

    def __str__(self) -> str:
        return f"{self.path}: cannot write ({self.strerror})"


def _create_temp(folder: Path, stem: str, suffix: str) -> Path:
    """Create an empty temporary file in ``folder`` with the umask's permissions (not mkstemp's 0600)."""
    for _ in range(100):
        tmp = folder / f".{stem}{_TEMP_TAG}{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(folder))


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed.

    Args:
        path: the final destination (parent folders are created).
        suffix: suffix of the temporary file (default: the destination's, so that writers which pick a
            format from the extension, such as ``cv2.imwrite`` or ``np.save``, behave the same).

    Raises:
        WriteError: the folder or the file cannot be written (an ``OSError`` naming ``path``).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _create_temp(path.parent, path.stem, path.suffix if suffix is None else suffix)
        mode = os.stat(tmp).st_mode & 0o777  # 0666 minus the umask, as the system applied it
    except OSError as exc:
        raise WriteError(path, exc) from exc
    try:
        yield tmp
        if os.stat(tmp).st_mode & 0o777 != mode:  # a writer that replaced the file with its own (0600)
            os.chmod(tmp, mode)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(path, exc) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Delete the temporary files that killed lbag processes left in ``folder`` (and below it with
    ``recursive``); files of processes still running are kept. Returns the removed paths."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in (folder.rglob(f".*{_TEMP_TAG}*") if recursive else folder.glob(f".*{_TEMP_TAG}*")):
        m = _TEMP_RE.match(p.name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        try:
            p.unlink()
            removed.append(p)
        except FileNotFoundError:
            pass  # another process cleaned it first
    return removed


def check_output_dir(path: str | os.PathLike) -> Path:
    """Make sure ``path`` can receive output before any work is done: create it if missing, refuse an
    existing file, and try writing in it (permissions, read-only file systems).

    Raises:
        WriteError: naming ``path`` and the reason.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise WriteError(path, "it exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        _create_temp(path, "write-test", "").unlink()
    except OSError as exc:
        raise WriteError(path, exc) from exc
    return path


def check_output_file(path: str | os.PathLike) -> Path:
    """Like :func:`check_output_dir` for a file to be written: refuse a folder, check its folder."""
    path = Path(path)
    if path.is_dir():
        raise WriteError(path, "it is a folder; give a file name")
    check_output_dir(path.parent)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _finite_or_none(obj):
    """NaN and infinities (not valid JSON) become None (null), in nested dicts, lists and tuples."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj: object) -> Path:
    """Write ``obj`` as indented, valid JSON to ``path`` atomically; NaN and infinities are written as null."""
    return write_text(path, json.dumps(_finite_or_none(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")
