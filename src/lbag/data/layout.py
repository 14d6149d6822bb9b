"""The ReLoBlur folder layout and the one place for image I/O in lbag.

Li et al., "Real-World Deep Local Motion Deblurring" (AAAI 2023) publish ReLoBlur as

    <root>/dataset/{train,test}/<scene>/<seq>/<idx>_sharp.png and <idx>_blur.png
    <root>/masks/{train,test}/<scene>/<seq>/<idx>.png

(scenes ``s01``..., sequences ``00``..., indices ``00``...). Masks may also live in a separate folder
with the same relative layout (the later hand-annotated masks). Any non-zero mask pixel is blurred.

Readers, by what they return: ``decode_*`` gives the file's own pixel values (:func:`decode_stored`: as
stored, BGR, any channels; :func:`decode_image`: RGB in the file's integer type), ``read_*`` gives lbag's
working values (:func:`read_image`: float32 RGB in [0, 1]; :func:`read_mask`: bool). Every reader raises
:class:`ImageReadError` naming the file for 0-byte or undecodable files, so a caller iterating over a
folder can report the bad file and carry on with the rest.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_path
from ..pixels import to_float01, to_uint

SPLITS = ("train", "test")  # the published splits; any folder name under dataset/ can be read
DATASET_FOLDER = "dataset"  # ROOT/dataset/<split>/<scene>/<seq>/<idx>_{sharp,blur}.png
MASKS_FOLDER = "masks"  # ROOT/masks/<split>/<scene>/<seq>/<idx>.png
PAIR_SUFFIX = ".png"
# A pair image's file stem: <idx>_sharp or <idx>_blur (the dataset and the capture session alike).
PAIR_RE = re.compile(r"^(?P<idx>.+)_(?P<kind>sharp|blur)$")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")  # what readers of image folders accept


class ImageReadError(OSError):
    """A file that should be an image is missing, empty or cannot be decoded."""


@dataclass(frozen=True)
class Pair:
    """One sharp/blurred pair of the published layout.

    ``name`` is ``'<scene>/<seq>/<idx>'`` (e.g. ``'s01/00/03'``), unique within a split. ``mask`` is the
    expected mask path when a mask folder is known (the file may still be missing: check ``exists()``),
    else ``None``.
    """

    name: str
    scene: str
    seq: str
    idx: str
    split: str
    sharp: Path
    blur: Path
    mask: Path | None = None


def dataset_dir(root: str | os.PathLike, split: str) -> Path:
    """``ROOT/dataset/<split>``; also accepts ROOT pointing at the ``dataset`` folder itself (readers)."""
    root = Path(root)
    if has_split(root, split) or not (root / split).is_dir():
        return root / DATASET_FOLDER / split
    return root / split


def has_split(root: str | os.PathLike, split: str) -> bool:
    """Whether ROOT holds the published split folder ``ROOT/dataset/<split>``."""
    return (Path(root) / DATASET_FOLDER / split).is_dir()


def present_splits(root: str | os.PathLike) -> tuple[str, ...]:
    """The :data:`SPLITS` that :func:`find_pairs` can read under ROOT (see :func:`dataset_dir`).

    Raises:
        FileNotFoundError: when there is none.
    """
    found = tuple(s for s in SPLITS if dataset_dir(root, s).is_dir())
    if not found:
        raise FileNotFoundError(f"{root}: no " + " or ".join(f"{DATASET_FOLDER}/{s}" for s in SPLITS) + " folder")
    return found


def default_masks_root(root: str | os.PathLike) -> Path:
    """Where the published release keeps its masks: ``ROOT/masks``."""
    return Path(root) / MASKS_FOLDER


def pair_files(seq_dir: str | os.PathLike, idx: str) -> tuple[Path, Path]:
    """``(sharp, blurred)`` image paths of pair ``idx`` in a sequence folder: ``<idx>_sharp.png``,
    ``<idx>_blur.png``."""
    seq_dir = Path(seq_dir)
    return seq_dir / f"{idx}_sharp{PAIR_SUFFIX}", seq_dir / f"{idx}_blur{PAIR_SUFFIX}"


def pair_paths(root: str | os.PathLike, split: str, scene: str, seq: str, idx: str) -> tuple[Path, Path]:
    """``(sharp, blurred)`` paths of one pair in the published layout,
    ``ROOT/dataset/<split>/<scene>/<seq>/<idx>_{sharp,blur}.png`` (where writers put it)."""
    return pair_files(Path(root) / DATASET_FOLDER / split / scene / seq, idx)


def sample_path(folder: str | os.PathLike, scene: str, seq: str, idx: str) -> Path:
    """``FOLDER/<scene>/<seq>/<idx>.png``: one image's file in a split-level folder of masks or of
    predictions (``lbag deblur`` writes and ``lbag evaluate`` reads that layout)."""
    return Path(folder) / scene / seq / f"{idx}{PAIR_SUFFIX}"


def mask_path(masks_root: str | os.PathLike, split: str, scene: str, seq: str, idx: str) -> Path:
    """``MASKS_ROOT/<split>/<scene>/<seq>/<idx>.png``."""
    return sample_path(Path(masks_root) / split, scene, seq, idx)


def mask_files(masks_root: str | os.PathLike, split: str) -> list[Path]:
    """Every ``<scene>/<seq>/*.png`` under ``MASKS_ROOT/<split>``, sorted (empty without that folder)."""
    return sorted((Path(masks_root) / split).glob(f"*/*/*{PAIR_SUFFIX}"))


def _scan_pairs(split_dir: Path) -> dict[tuple[str, str, str], dict[str, Path]]:
    """``{(scene, seq, idx): {kind: path}}`` of the pair images found in a split folder."""
    found: dict[tuple[str, str, str], dict[str, Path]] = {}
    for path in split_dir.glob(f"*/*/*{PAIR_SUFFIX}"):
        m = PAIR_RE.match(path.stem)
        if m is not None:
            found.setdefault((path.parent.parent.name, path.parent.name, m["idx"]), {})[m["kind"]] = path
    return found


def pair_images(split_dir: str | os.PathLike, kind: str) -> list[tuple[str, Path]]:
    """``(name, path)`` of every ``<scene>/<seq>/<idx>_<kind>.png`` in a split folder, sorted by path;
    ``name`` is ``'<scene>/<seq>/<idx>'``."""
    found = _scan_pairs(Path(split_dir))
    hits = [(f"{scene}/{seq}/{idx}", files[kind]) for (scene, seq, idx), files in found.items() if kind in files]
    return sorted(hits, key=lambda hit: hit[1])


def is_split_dir(folder: str | os.PathLike, kind: str = "sharp") -> bool:
    """Whether ``folder`` looks like one split folder: it holds a ``<scene>/<seq>/<idx>_<kind>.png``."""
    for path in Path(folder).glob(f"*/*/*_{kind}{PAIR_SUFFIX}"):
        if PAIR_RE.match(path.stem):
            return True
    return False


def published_root(folder: str | os.PathLike, split: str) -> tuple[Path, str] | None:
    """``(dataset root, split)`` when ``folder`` is a published root holding ``dataset/<split>`` or one
    split folder of it (``ROOT/dataset/<split>`` itself: then its own name is the split), else None."""
    folder = Path(folder)
    if has_split(folder, split):
        return folder, split
    if is_split_dir(folder, "sharp"):
        return folder.parent.parent, folder.name
    return None


def find_pairs(root: str | os.PathLike, split: str, masks_root: str | os.PathLike | None = None,
               strict: bool = False) -> list[Pair]:
    """List the pairs of one split, sorted by name.

    A pair is listed when at least one of its two images exists; the partner may be missing (``lbag
    data check`` reports that; datasets pass ``strict=True`` to skip such pairs). Mask paths point
    into ``masks_root`` (default ``ROOT/masks``) with the same ``<split>/<scene>/<seq>/<idx>.png``
    layout; they are ``None`` when no mask folder exists at all.

    Args:
        root: dataset root holding ``dataset/{train,test}``.
        split: ``'train'`` or ``'test'`` (any folder name under ``dataset/`` works).
        masks_root: folder with ``{split}/<scene>/<seq>/<idx>.png``; default ``ROOT/masks``.
        strict: keep only pairs whose sharp and blurred images both exist.

    Raises:
        FileNotFoundError: when ``ROOT/dataset/<split>`` does not exist.
    """
    ddir = dataset_dir(root, split)
    if not ddir.is_dir():
        raise FileNotFoundError(f"{ddir}: no such split folder (expected ROOT/dataset/{split}/<scene>/<seq>/)")
    mroot = Path(masks_root) if masks_root is not None else default_masks_root(root)
    have_masks = (mroot / split).is_dir() or masks_root is not None
    pairs = []
    for (scene, seq, idx), kinds in sorted(_scan_pairs(ddir).items()):
        if strict and len(kinds) < 2:
            continue
        sharp, blur = pair_files(ddir / scene / seq, idx)
        pairs.append(Pair(
            name=f"{scene}/{seq}/{idx}", scene=scene, seq=seq, idx=idx, split=split, sharp=sharp, blur=blur,
            mask=mask_path(mroot, split, scene, seq, idx) if have_masks else None))
    return pairs


# ---------------------------------------------------------------------------------------------------
# Image I/O
# ---------------------------------------------------------------------------------------------------

# Largest image lbag decodes, in pixels (100 megapixels: 12000x8000 and more than any ReLoBlur-like use;
# decoding, a float copy and tiled inference of such an image take ~5 GB). The environment variable
# LBAG_MAX_PIXELS overrides it. Checked on the file header before decoding, so a file whose header
# claims an absurd size is refused without allocating anything.
MAX_PIXELS = 100_000_000


def max_pixels() -> int:
    """The pixel limit in force: ``$LBAG_MAX_PIXELS`` if set, else :data:`MAX_PIXELS`."""
    try:
        return int(os.environ.get("LBAG_MAX_PIXELS", MAX_PIXELS))
    except ValueError:
        return MAX_PIXELS


def _jpeg_size(fh) -> tuple[int, int] | None:
    fh.seek(2)
    while True:
        b = fh.read(1)
        while b == b"\xff":  # fill bytes before a marker
            b = fh.read(1)
        if not b:
            return None
        marker = b[0]
        if marker in (0x01, *range(0xD0, 0xDA)):  # stand-alone markers: no length
            continue
        head = fh.read(2)
        if len(head) < 2:
            return None
        length = int.from_bytes(head, "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            sof = fh.read(5)
            return (int.from_bytes(sof[3:5], "big"), int.from_bytes(sof[1:3], "big")) if len(sof) == 5 else None
        fh.seek(length - 2, os.SEEK_CUR)
        b = fh.read(1)
        if b != b"\xff":
            return None
        fh.seek(-1, os.SEEK_CUR)


def _tiff_size(fh, order: str) -> tuple[int, int] | None:
    fh.seek(4)
    ifd = int.from_bytes(fh.read(4), order)
    fh.seek(ifd)
    raw = fh.read(2)
    if len(raw) < 2:
        return None
    dims: dict[int, int] = {}
    for _ in range(int.from_bytes(raw, order)):
        entry = fh.read(12)
        if len(entry) < 12:
            break
        tag, kind = int.from_bytes(entry[0:2], order), int.from_bytes(entry[2:4], order)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            dims[tag] = int.from_bytes(entry[8:10] if kind == 3 else entry[8:12], order)
    return (dims[256], dims[257]) if len(dims) == 2 else None


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG, TIFF or BMP file without decoding it; None when
    the format is another one or the header cannot be parsed (the decoder then has the last word)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            if head[:2] == b"BM" and len(head) >= 26:
                if int.from_bytes(head[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER
                    return int.from_bytes(head[18:20], "little"), int.from_bytes(head[20:22], "little")
                return (abs(int.from_bytes(head[18:22], "little", signed=True)),
                        abs(int.from_bytes(head[22:26], "little", signed=True)))
            if head[:3] == b"\xff\xd8\xff":
                return _jpeg_size(fh)
            if head[:4] in (b"II*\x00", b"MM\x00*"):
                return _tiff_size(fh, "little" if head[:2] == b"II" else "big")
    except (OSError, ValueError):
        return None
    return None


def stored_format(img: np.ndarray) -> str:
    """What an array from :func:`decode_stored` holds, in words: '8-bit greyscale', '16-bit RGB', ..."""
    channels = 1 if img.ndim == 2 else img.shape[2]
    depth = {np.dtype(np.uint8): "8-bit", np.dtype(np.uint16): "16-bit"}.get(img.dtype, str(img.dtype))
    return f"{depth} {({1: 'greyscale', 2: 'greyscale+alpha', 3: 'RGB', 4: 'RGBA'}).get(channels, f'{channels}-channel')}"


def decode_stored(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    """Decode a file with OpenCV as stored (depth and channels; BGR order); errors name the file and the
    problem.

    Images over :func:`max_pixels` (by their header) are refused before decoding."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if size == 0:
        raise ImageReadError(f"{path}: empty {what} file (0 bytes)")
    dims = image_size(path)
    limit = max_pixels()
    if dims is not None and dims[0] * dims[1] > limit:
        raise ImageReadError(f"{path}: the header declares {dims[0]}x{dims[1]} pixels, over the limit of "
                             f"{limit:,} pixels (set LBAG_MAX_PIXELS to raise it); not decoded")
    try:
        # imdecode handles non-ASCII paths, imread does not.
        img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except (cv2.error, MemoryError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ImageReadError(f"{path}: the decoder failed on this {what} ({reason})") from None
    if img is None:
        raise ImageReadError(f"{path}: not a decodable {what} (corrupt or truncated, {size} bytes)")
    return img


def decode_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to RGB in its native integer type (uint8 or uint16), shape (H, W, 3): the
    file's own values, unscaled (:func:`read_image` is the same image as float32 in [0, 1]).

    Grayscale is replicated to three channels; an alpha channel is dropped (ReLoBlur images are opaque;
    compositing over an arbitrary colour would invent data). Float TIFFs are returned as float32.

    Raises:
        ImageReadError: missing, 0-byte or undecodable file (the message names the file).
    """
    return to_rgb(decode_stored(path), path)


def to_rgb(img: np.ndarray, path: str | os.PathLike = "<array>") -> np.ndarray:
    """An image as :func:`decode_stored` returns it -> RGB (H, W, 3) as :func:`decode_image` does."""
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageReadError(f"{path}: unsupported pixel type {img.dtype}")
    return np.ascontiguousarray(img)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as float32 RGB in [0, 1], shape (H, W, 3): :func:`decode_image` scaled by
    :func:`lbag.pixels.to_float01` (8- and 16-bit files by their own maximum). Grayscale becomes three
    equal channels; alpha is dropped.

    Raises:
        ImageReadError: missing, 0-byte or undecodable file.
    """
    return to_float01(decode_image(path))


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask file as a bool (H, W) array: any non-zero value in any channel is blurred. (There is
    no integer-valued mask reader; :func:`decode_stored` gives the stored values.)"""
    img = decode_stored(path, "mask")
    if img.ndim == 3:
        # An RGBA mask drawn in an editor marks blur in its colour channels; alpha is coverage only.
        img = img[:, :, :3].max(axis=2) if img.shape[2] >= 3 else img[:, :, 0]
    return img > 0


def write_image(path: str | os.PathLike, array: np.ndarray, bits: int = 8) -> Path:
    """Write an RGB (H, W, 3) or single-channel (H, W) image atomically (tmp file + ``os.replace``).

    Float input is taken as [0, 1], clipped, and rounded to ``bits`` (8 or 16); integer input is
    written as is (its type must match ``bits``); bool input becomes 0/255. The format follows the
    suffix (PNG recommended; 16 bits need PNG or TIFF). Parent folders are created.
    """
    path = Path(path)
    if bits not in (8, 16):
        raise ValueError(f"{path}: bits must be 8 or 16, got {bits}")
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"{path}: expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {arr.shape}")
    dtype = np.uint8 if bits == 8 else np.uint16
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.floating):
        arr = to_uint(arr, bits)
    elif arr.dtype != dtype:
        raise ValueError(f"{path}: integer image of type {arr.dtype} cannot be written with bits={bits}")
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR if arr.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower() or ".png"
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1] if ext == ".png" else []
    ok, buf = cv2.imencode(ext, arr, params)
    if not ok:
        raise OSError(f"{path}: could not encode the image as {ext}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return path


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Write a bool (H, W) mask as an 8-bit PNG (0 / 255), atomically."""
    return write_image(path, np.asarray(mask, dtype=bool), bits=8)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (by suffix) directly under ``folder`` or below it, sorted."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
