"""Decode-once cache for training images (ReLoBlur pairs, Li et al., AAAI 2023).

A 2152x1436 PNG takes tens of milliseconds to decode; a 256x256 training patch must not pay that.
Each source file is decoded once into a ``.npy`` array (uint8/uint16 RGB, bool masks) that is then
memory-mapped, so a random crop reads only the pages it touches. The cache file name carries the
source's size and modification time: when the source changes, the old entry no longer matches and is
replaced. Writes are atomic, so DataLoader workers may race on the same entry safely.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, remove_stale_temps
from .layout import decode_image, read_mask


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/lbag/decoded`` (default ``~/.cache/lbag/decoded``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lbag" / "decoded"


class ArrayCache:
    """Memory-mapped decoded images, keyed by absolute path + file size + mtime.

    Args:
        cache_dir: folder for the ``.npy`` files (created on demand).
        max_open: how many memory maps to keep open per process (each holds a file descriptor).
    """

    def __init__(self, cache_dir: str | os.PathLike, max_open: int = 256):
        self.cache_dir = Path(cache_dir)
        self.max_open = max_open
        self._open: OrderedDict[Path, np.ndarray] = OrderedDict()

    def entry_path(self, source: str | os.PathLike, kind: str) -> Path:
        """The cache file for ``source`` as it is now (size and mtime are part of the name)."""
        source = Path(source).resolve()
        st = source.stat()
        key = hashlib.sha1(f"{kind}:{source}".encode()).hexdigest()[:20]
        return self.cache_dir / key[:2] / f"{key}_{st.st_size}_{st.st_mtime_ns}.npy"

    def load(self, source: str | os.PathLike, kind: str = "image") -> np.ndarray:
        """Read-only array of ``source`` decoded as ``kind`` ('image' -> (H, W, 3) uint8/uint16,
        'mask' -> (H, W) bool), decoding and storing it first if the cache has no current entry.

        Raises:
            ImageReadError: the source is missing, empty or undecodable.
        """
        if kind not in ("image", "mask"):
            raise ValueError(f"kind must be 'image' or 'mask', got {kind!r}")
        try:
            entry = self.entry_path(source, kind)
        except OSError:
            from .layout import ImageReadError
            raise ImageReadError(f"{source}: cannot read (missing file)") from None
        arr = self._open.get(entry)
        if arr is not None:
            self._open.move_to_end(entry)
            return arr
        if not entry.exists():
            self._store(entry, self._decode(source, kind))
        try:
            arr = self._open_entry(entry, kind)
        except (OSError, ValueError, EOFError) as exc:
            # A truncated or damaged entry (a full disk, a crash outside lbag): derived data, re-decode.
            warnings.warn(f"{entry}: damaged decode-cache entry of {source} ({exc}); decoding it again",
                          stacklevel=2)
            self._store(entry, self._decode(source, kind))
            arr = self._open_entry(entry, kind)
        self._open[entry] = arr
        if len(self._open) > self.max_open:
            self._open.popitem(last=False)
        return arr

    @staticmethod
    def _decode(source, kind: str) -> np.ndarray:
        return decode_image(source) if kind == "image" else read_mask(source)

    @staticmethod
    def _open_entry(entry: Path, kind: str) -> np.ndarray:
        """Memory-map an entry and check it is what the cache writes (else ValueError)."""
        arr = np.load(entry, mmap_mode="r", allow_pickle=False)
        ok = arr.ndim == 2 and arr.dtype == bool if kind == "mask" else (
            arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype in (np.uint8, np.uint16, np.float32))
        if not ok:
            raise ValueError(f"unexpected {arr.dtype} array of shape {arr.shape}")
        return arr

    def _store(self, entry: Path, arr: np.ndarray) -> None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(entry.parent)  # half-written entries of killed processes
        # Entries for older versions of the same source share the key prefix: drop them.
        prefix = entry.name.split("_", 1)[0]
        for stale in entry.parent.glob(f"{prefix}_*.npy"):
            if stale != entry:
                try:
                    stale.unlink()
                except OSError:
                    pass  # another worker removed it first
        with atomic_path(entry) as tmp:
            np.save(tmp, np.ascontiguousarray(arr))

    def __getstate__(self):
        # Memory maps are per process; a worker reopens what it needs.
        return {"cache_dir": self.cache_dir, "max_open": self.max_open}

    def __setstate__(self, state):
        self.__init__(state["cache_dir"], state["max_open"])
