"""RAW input for the capture pipeline of *Real-World Deep Local Motion Deblurring* (Li et al., AAAI 2023).

The ReLoBlur post-processing works on Bayer RAW frames. This module reads them into one common form,
a :class:`RawFrame`: a float32 colour-filter-array (CFA) image, black level subtracted and divided by
the usable range, so 0 is black and 1 is the sensor's white level; plus the Bayer pattern.

Sources:

- camera RAW and DNG files through ``rawpy`` (LibRaw): ``raw_image_visible``, ``raw_pattern`` +
  ``color_desc`` give the pattern, ``black_level_per_channel`` / ``white_level`` the levels;
- plain Bayer arrays: ``.npy`` and single-page ``.tif``/``.tiff`` files. Integer arrays use the black
  and white levels given by the caller (default: 0 and the dtype's maximum); float arrays are taken as
  already normalised.

``write_dng`` writes a minimal, valid CFA DNG with ``tifffile`` (used by the tests for the rawpy round
trip, and handy to turn a Bayer array into a file any RAW tool can open).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path

BAYER_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
RAW_SUFFIXES = (".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw", ".raw")
ARRAY_SUFFIXES = (".npy", ".tif", ".tiff")
_CHANNEL_INDEX = {"R": 0, "G": 1, "B": 2}


class RawFormatError(ValueError):
    """A RAW / Bayer file that cannot be used; the message names the file and the problem."""


def check_pattern(pattern: str) -> str:
    """Return ``pattern`` upper-cased, or raise ``ValueError`` if it is not a 2x2 Bayer pattern."""
    p = str(pattern).upper()
    if p not in BAYER_PATTERNS:
        raise ValueError(f"unknown Bayer pattern {pattern!r}: expected one of {', '.join(BAYER_PATTERNS)}")
    return p


def channel_index_map(shape: tuple[int, int], pattern: str) -> np.ndarray:
    """Channel of every CFA site (0 = R, 1 = G, 2 = B).

    Args:
        shape: (H, W) of the CFA image.
        pattern: Bayer pattern of the top-left 2x2 block, e.g. ``"RGGB"``.

    Returns:
        uint8 array of shape (H, W).
    """
    p = check_pattern(pattern)
    cell = np.array([[_CHANNEL_INDEX[p[0]], _CHANNEL_INDEX[p[1]]], [_CHANNEL_INDEX[p[2]], _CHANNEL_INDEX[p[3]]]],
                    dtype=np.uint8)
    h, w = shape
    return np.tile(cell, ((h + 1) // 2, (w + 1) // 2))[:h, :w]


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample an (H, W, 3) RGB image on a Bayer CFA: the forward model of a colour sensor.

    Returns:
        (H, W) array of the same dtype, each site holding its filter's channel.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"mosaic expects an (H, W, 3) image, got shape {rgb.shape}")
    idx = channel_index_map(rgb.shape[:2], pattern)
    return np.take_along_axis(rgb, idx[..., None].astype(np.intp), axis=2)[..., 0]


@dataclass(frozen=True)
class RawFrame:
    """A Bayer frame in normalised linear units.

    Attributes:
        cfa: float32 (H, W), 0 = black level, 1 = white (saturation) level; not clipped.
        pattern: Bayer pattern of the top-left 2x2 block.
        black_level: black level of the source file, in its digital numbers.
        white_level: white level of the source file, in its digital numbers.
        path: where it came from ("" for in-memory frames).
    """

    cfa: np.ndarray
    pattern: str
    black_level: float = 0.0
    white_level: float = 1.0
    path: str = ""


def _pattern_from_rawpy(raw, path: Path) -> str:
    desc = raw.color_desc.decode("ascii", "replace")
    rp = np.asarray(raw.raw_pattern)
    if rp.shape != (2, 2):
        raise RawFormatError(f"{path}: not a 2x2 Bayer sensor (raw_pattern {rp.shape}); X-Trans and "
                             f"other CFAs are not supported")
    # LibRaw numbers colours 0..3 into color_desc (e.g. 'RGBG'); the 4th is the second green.
    letters = "".join(desc[int(c)] for c in rp.ravel())
    letters = letters.replace("g", "G")
    try:
        return check_pattern(letters)
    except ValueError as exc:
        raise RawFormatError(f"{path}: {exc}") from None


def _normalise(arr: np.ndarray, black: float, white: float, path: Path) -> np.ndarray:
    if not white > black:
        raise RawFormatError(f"{path}: white level {white} must be above black level {black}")
    return ((arr.astype(np.float32) - np.float32(black)) / np.float32(white - black)).astype(np.float32)


def read_raw(path: str | os.PathLike, pattern: str | None = None, black_level: float | None = None,
             white_level: float | None = None) -> RawFrame:
    """Read a RAW file or a Bayer array into a normalised :class:`RawFrame`.

    Args:
        path: a camera RAW / DNG file (read with rawpy) or a ``.npy`` / ``.tif`` Bayer array.
        pattern: the expected Bayer pattern. For RAW files it is checked against the file's own
            pattern (a mismatch is an error); for arrays it is required (default ``"RGGB"``).
        black_level, white_level: levels in the file's digital numbers. For RAW files they override
            the file's metadata; for integer arrays they default to 0 and the dtype's maximum; float
            arrays default to 0 and 1.

    Returns:
        The frame; ``cfa`` is float32 (H, W).

    Raises:
        RawFormatError: the file is missing, unreadable, not a 2-D Bayer array, or its pattern differs
            from ``pattern``.
    """
    path = Path(path)
    if not path.is_file():
        raise RawFormatError(f"{path}: no such file")
    if pattern is not None:
        pattern = check_pattern(pattern)
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        try:
            if suffix == ".npy":
                arr = np.load(path, allow_pickle=False)
            else:
                import tifffile

                arr = tifffile.imread(path)
        except Exception as exc:  # noqa: BLE001 - every reader error becomes one clear message
            raise RawFormatError(f"{path}: cannot read Bayer array ({exc})") from None
        arr = np.squeeze(arr)
        if arr.ndim != 2:
            raise RawFormatError(f"{path}: a Bayer array must be 2-D (H, W), got shape {arr.shape}")
        if arr.shape[0] < 2 or arr.shape[1] < 2:
            raise RawFormatError(f"{path}: Bayer array too small: {arr.shape}")
        if np.issubdtype(arr.dtype, np.integer):
            black = 0.0 if black_level is None else float(black_level)
            white = float(np.iinfo(arr.dtype).max) if white_level is None else float(white_level)
        elif np.issubdtype(arr.dtype, np.floating):
            bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
            if bad:
                raise RawFormatError(f"{path}: {bad} non-finite value(s) (NaN or infinity) in the Bayer data")
            black = 0.0 if black_level is None else float(black_level)
            white = 1.0 if white_level is None else float(white_level)
        else:
            raise RawFormatError(f"{path}: unsupported array dtype {arr.dtype}")
        return RawFrame(_normalise(arr, black, white, path), pattern or "RGGB", black, white, str(path))
    if suffix not in RAW_SUFFIXES:
        raise RawFormatError(f"{path}: unknown RAW suffix {path.suffix!r}; expected one of "
                             f"{', '.join(RAW_SUFFIXES + ARRAY_SUFFIXES)}")
    import rawpy

    try:
        with rawpy.imread(str(path)) as raw:
            file_pattern = _pattern_from_rawpy(raw, path)
            arr = np.array(raw.raw_image_visible, copy=True)
            blacks = np.asarray(raw.black_level_per_channel, dtype=np.float64)
            black = float(blacks.mean()) if black_level is None else float(black_level)
            white = float(raw.white_level) if white_level is None else float(white_level)
    except RawFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - LibRaw raises many types
        raise RawFormatError(f"{path}: rawpy cannot read it ({type(exc).__name__}: {exc})") from None
    if pattern is not None and pattern != file_pattern:
        raise RawFormatError(f"{path}: the file's Bayer pattern is {file_pattern}, but {pattern} was requested")
    return RawFrame(_normalise(arr, black, white, path), file_pattern, black, white, str(path))


def write_dng(path: str | os.PathLike, cfa: np.ndarray, pattern: str = "RGGB", black_level: int = 0,
              white_level: int | None = None) -> None:
    """Write a minimal CFA DNG (DNG 1.4 tags) with tifffile, atomically.

    Args:
        path: output ``.dng`` path.
        cfa: (H, W) uint16 Bayer data in digital numbers.
        pattern: Bayer pattern of the top-left 2x2 block.
        black_level, white_level: stored as BlackLevel / WhiteLevel (white defaults to the data's
            dtype maximum).
    """
    import tifffile

    pattern = check_pattern(pattern)
    cfa = np.asarray(cfa)
    if cfa.ndim != 2 or cfa.dtype != np.uint16:
        raise ValueError(f"write_dng expects a 2-D uint16 array, got {cfa.dtype} {cfa.shape}")
    white = int(np.iinfo(np.uint16).max if white_level is None else white_level)
    cfa_codes = bytes(_CHANNEL_INDEX[c] for c in pattern)
    # Tag codes from the DNG 1.4 specification (TIFF/EP for the CFA ones).
    # (code, TIFF type, count, value, write-once); types: 1 BYTE, 2 ASCII, 3 SHORT, 4 LONG,
    # 5 RATIONAL, 10 SRATIONAL. Tag codes from the DNG 1.4 specification (TIFF/EP for the CFA ones).
    identity = (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1)
    extratags = [
        (50706, 1, 4, (1, 4, 0, 0), True),            # DNGVersion
        (50707, 1, 4, (1, 1, 0, 0), True),            # DNGBackwardVersion
        (50708, 2, 0, "lbag capture", True),          # UniqueCameraModel
        (33421, 3, 2, (2, 2), True),                  # CFARepeatPatternDim
        (33422, 1, 4, tuple(cfa_codes), True),        # CFAPattern
        (50710, 1, 3, (0, 1, 2), True),               # CFAPlaneColor
        (50711, 3, 1, 1, True),                       # CFALayout: rectangular
        (50713, 3, 2, (1, 1), True),                  # BlackLevelRepeatDim
        (50714, 4, 1, int(black_level), True),        # BlackLevel
        (50717, 4, 1, white, True),                   # WhiteLevel
        # ColorMatrix1 (XYZ -> camera): identity; LibRaw needs one to treat the file as colour.
        (50721, 10, 9, identity, True),
        (50778, 3, 1, 21, True),                      # CalibrationIlluminant1: D65
        (50728, 5, 3, (1, 1, 1, 1, 1, 1), True),      # AsShotNeutral
    ]
    path = Path(path)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, cfa, photometric=32803, planarconfig=1, subfiletype=0, extratags=extratags)
