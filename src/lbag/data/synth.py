"""Physically based synthetic local motion blur: the embedded default data of lbag.

Li et al., "Real-World Deep Local Motion Deblurring" (AAAI 2023) capture sharp/blurred pairs with two
synchronised cameras: the blurred camera integrates the scene over a long exposure, the sharp one over
a short exposure that STARTS at the same instant, and an ND filter gives both the same photon energy.
ReLoBlur itself cannot be downloaded here, so this module renders pairs by that image-formation model
instead of convolving with blur kernels:

* a static background and a few moving foreground layers with alpha (sources: a procedural
  dead-leaves model with textures, the sample photographs shipped with scikit-image, or a folder of
  the user's photos);
* per layer a trajectory over the exposure t in [0, 1]: translation with acceleration, rotation and
  scaling, composited in LINEAR light and integrated with enough sub-frames that consecutive
  positions are at most ``subframe_step`` pixels apart (no visible stepping);
* the sharp frame integrates t in [0, sharp_exposure] (the start of the long exposure, as ReLoBlur's
  cameras do) or, with ``sharp_at='middle'``, a window of that length centred in it; both frames
  are normalised to the same energy, then get shot + read noise (an independent draw per frame, or
  with ``noise='shared'`` one draw for both), clipping of over-exposed highlights
  (objects carry specular highlights brighter than the white point, whose smear only a linear-light
  integration reproduces) and sRGB encoding to 8 bits;
* the EXACT blur mask: every pixel that any moving layer covers (alpha > ``mask_threshold``) at any
  sub-frame of either exposure.

Several images of a scene share its background, as in ReLoBlur, which LBFMG masks rely on.
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from ..atomic import write_json
from ..pixels import to_uint
from ..srgb import srgb_decode, srgb_encode
from .layout import decode_image, default_masks_root, list_images, mask_path, pair_paths, write_image, write_mask


SHARP_AT = ("start", "middle")
OBJECT_SHAPES = ("cutout", "blob")
NOISE_MODES = ("independent", "shared")


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of the generator (pixels refer to the output size).

    Attributes:
        size: output (width, height).
        scenes: number of scenes (each with its own background; train/test split by scene).
        sequences_per_scene, images_per_sequence: pairs per scene = their product.
        test_fraction: share of scenes in the test split (at least one each when scenes >= 2).
        blur_extent: range of the largest displacement of any object point over the exposure (px).
        blurred_area: range of the blurred (mask) fraction of the frame.
        objects: (min, max) moving layers per image.
        rotation_share, scale_share: at most this share of the extent comes from rotation / scaling.
        max_acceleration: |a| / |v| at most (velocity never reverses along the main direction).
        subframe_step: largest motion of any point between two sub-frames (px).
        min_subframes: at least this many sub-frames for the long exposure.
        sharp_exposure: t_S / t_L, the length of the sharp frame's exposure.
        sharp_at: where the sharp exposure sits inside the long one: 'start' (ReLoBlur: both cameras
            start together) or 'middle' (centred: a symmetric streak determines the target).
        object_shape: outline of the moving objects: 'cutout' (a region grown over the superpixels of
            the texture image, so outlines follow real colour edges) or 'blob' (a smooth random blob).
        exposure: range of the scene's linear gain.
        highlight_prob: probability that an object carries specular highlights.
        highlight_radiance: peak linear radiance of highlights (1.0 = white point; above clips).
        light_strips: at most this many static light strips per background (0 to N, uniform): thin
            straight lamps or rows of lamps above the white point, clipped identically in both
            frames; most glow (a halo of their light, as lens bloom spreads a real lamp). Without them
            a network takes a glowing static lamp for the motion streak of a highlight and dims it.
        full_well: photo-electrons at the white point (shot noise sigma = sqrt(L / full_well)).
        read_noise: read-noise sigma in linear units; 0 with full_well = inf gives noise-free pairs.
        noise: 'independent' (each frame its own noise draw, as two real cameras) or 'shared' (one
            standard-normal field scales into both frames' noise, so pixels no object touches are
            identical in the pair: a network trained on it learns to leave static areas alone
            instead of learning to denoise them).
        mask_threshold: alpha above which a pixel counts as touched by a moving layer (0: any alpha; a
            threshold such as 1/510 is not enough in dark regions, where the sRGB curve is steep enough
            for an alpha of 1/510 times a bright object colour to move a pixel by several 8-bit levels).
        sources: background/texture sources among 'deadleaves', 'photos' (scikit-image samples),
            'folder' (``images_dir``); 'folder' is added automatically when ``images_dir`` is set.
        images_dir: folder of the user's sharp photos.
        seed: base seed; every sample is a pure function of (seed, scene, sequence, index).
    """

    size: tuple[int, int] = (512, 384)
    scenes: int = 8
    sequences_per_scene: int = 1
    images_per_sequence: int = 6
    test_fraction: float = 0.25
    blur_extent: tuple[float, float] = (15.0, 70.0)
    blurred_area: tuple[float, float] = (0.05, 0.20)
    objects: tuple[int, int] = (1, 3)
    rotation_share: float = 0.25
    scale_share: float = 0.15
    max_acceleration: float = 0.8
    subframe_step: float = 0.5
    min_subframes: int = 16
    sharp_exposure: float = 1 / 30
    sharp_at: str = "start"
    object_shape: str = "cutout"
    exposure: tuple[float, float] = (0.7, 1.3)
    highlight_prob: float = 0.5
    highlight_radiance: tuple[float, float] = (1.5, 6.0)
    light_strips: int = 0
    full_well: float = 4000.0
    read_noise: float = 0.002
    noise: str = "independent"
    mask_threshold: float = 0.0
    sources: tuple[str, ...] = ("deadleaves", "photos")
    images_dir: str | None = None
    seed: int = 0

    def __post_init__(self):
        w, h = self.size
        if w < 16 or h < 16:
            raise ValueError(f"size must be at least 16x16, got {w}x{h}")
        for name in ("blur_extent", "blurred_area", "objects", "exposure", "highlight_radiance"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high, got {(lo, hi)}")
        if self.blurred_area[1] >= 1:
            raise ValueError(f"blurred_area must stay below 1, got {self.blurred_area}")
        if self.objects[0] < 1:
            raise ValueError(f"objects must be at least 1, got {self.objects}")
        if self.scenes < 1 or self.sequences_per_scene < 1 or self.images_per_sequence < 1:
            raise ValueError("scenes, sequences_per_scene and images_per_sequence must be >= 1")
        if not 0 <= self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        if not 0 < self.sharp_exposure <= 1:
            raise ValueError(f"sharp_exposure must be in (0, 1], got {self.sharp_exposure}")
        if self.sharp_at not in SHARP_AT:
            raise ValueError(f"sharp_at must be one of {', '.join(SHARP_AT)}, got {self.sharp_at!r}")
        if self.noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {', '.join(NOISE_MODES)}, got {self.noise!r}")
        if self.object_shape not in OBJECT_SHAPES:
            raise ValueError(f"object_shape must be one of {', '.join(OBJECT_SHAPES)}, got {self.object_shape!r}")
        if self.light_strips < 0:
            raise ValueError(f"light_strips must be >= 0, got {self.light_strips}")
        if self.subframe_step <= 0:
            raise ValueError(f"subframe_step must be > 0, got {self.subframe_step}")
        unknown = set(self.sources) - {"deadleaves", "photos", "folder"}
        if unknown or not self.sources:
            raise ValueError(f"sources must be a non-empty subset of deadleaves/photos/folder, got {self.sources}")
        if "folder" in self.sources and not self.images_dir:
            raise ValueError("source 'folder' needs images_dir")


# ---------------------------------------------------------------------------------------------------
# Camera response: sRGB encoding and decoding
# ---------------------------------------------------------------------------------------------------

# Lookup tables in float32 (lbag.srgb keeps the input precision).
_LIN_LUT = srgb_decode((np.arange(256) / 255.0).astype(np.float32))
# Encoding through a 16-bit index: linear steps of 1.5e-5 keep the 8-bit result exact but for ties.
_ENC_LUT = np.rint(srgb_encode((np.arange(65536) / 65535.0).astype(np.float32)) * 255).astype(np.uint8)


def _encode8(linear: np.ndarray) -> np.ndarray:
    """Clipped linear light -> 8-bit sRGB, via a lookup table (fast at 2152x1436); overwrites ``linear``."""
    idx = np.empty(linear.shape, np.uint16)
    np.multiply(np.clip(linear, 0.0, 1.0), 65535.0, out=linear, casting="unsafe")
    np.add(linear, 0.5, out=linear)
    idx[...] = linear
    return _ENC_LUT[idx]


# ---------------------------------------------------------------------------------------------------
# Image sources
# ---------------------------------------------------------------------------------------------------

_COLOUR_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "retina", "colorwheel")
_GRAY_PHOTOS = ("brick", "grass", "gravel", "camera", "moon", "coins", "text", "page")
@functools.cache  # once per process
def _skimage_photos() -> list[np.ndarray]:
    """The scikit-image sample photos that ship with the package (8-bit sRGB, (H, W, 3))."""
    import skimage.data

    photos = []
    for name in _COLOUR_PHOTOS + _GRAY_PHOTOS:
        try:
            img = np.asarray(getattr(skimage.data, name)())
        except Exception:  # a sample that would need a download: use the others
            continue
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        photos.append(np.ascontiguousarray(img[:, :, :3].astype(np.uint8)))
    return photos


@functools.cache  # once per process and folder
def _folder_photos(folder: str) -> list[Path]:
    files = list_images(folder)
    if not files:
        raise FileNotFoundError(f"{folder}: no images found for the synthetic generator")
    return files


@dataclass(frozen=True)
class PhotoPools:
    """The user's photos split by photo (not by scene): test scenes use only the test photos, so a
    held-out test split shows backgrounds AND objects the training split never saw.

    Attributes:
        train, test: photo paths of each split (the same list for both when the folder is too small
            to split; ``shared`` is then True).
        skipped: (path, reason) of photos that could not be decoded.
    """

    train: tuple[str, ...]
    test: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    shared: bool = False

    def for_split(self, split: str) -> tuple[str, ...]:
        return self.test if split == "test" else self.train


def _photo_is_test(path: Path, folder: Path, test_fraction: float) -> bool:
    """A stable pseudo-random split by the photo's path inside the folder (independent of the seed)."""
    name = path.relative_to(folder).as_posix() if path.is_relative_to(folder) else path.name
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < test_fraction


def photo_pools(folder: str | os.PathLike, test_fraction: float, warn=None) -> PhotoPools:
    """Check every photo of ``folder`` once (unreadable ones are reported and skipped) and split them.

    Raises:
        FileNotFoundError: the folder holds no readable image.
    """
    root = Path(folder)
    good, skipped = [], []
    for path in _folder_photos(str(folder)):
        try:
            img = _load_folder_photo(path)
            if img.ndim != 3 or min(img.shape[:2]) < 16:
                raise ValueError(f"{path}: too small or not a colour image (shape {img.shape})")
        except (OSError, ValueError, cv2.error) as exc:
            reason = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            skipped.append((str(path), reason))
            if warn is not None:
                warn(f"lbag synth: skipping {reason}")
            continue
        good.append(path)
    if not good:
        raise FileNotFoundError(f"{folder}: none of its {len(skipped)} images could be read")
    is_test = [_photo_is_test(p, root, test_fraction) for p in good]
    test = tuple(str(p) for p, t in zip(good, is_test) if t)
    train = tuple(str(p) for p, t in zip(good, is_test) if not t)
    if not test or not train:
        every = tuple(str(p) for p in good)
        return PhotoPools(every, every, tuple(skipped), shared=True)
    return PhotoPools(train, test, tuple(skipped))


def _load_folder_photo(path: Path) -> np.ndarray:
    return to_uint(decode_image(path), bits=8)  # (H, W, 3) uint8


_decoded: dict[tuple[str, int, int], np.ndarray] = {}


def _photo_at_scale(path: str, w: int, h: int) -> np.ndarray:
    """A photo decoded once per process, reduced to twice the scale at which it covers w x h (the
    largest zoom any crop uses): big wallpapers cost their full decode only once."""
    key = (path, w, h)
    if key not in _decoded:
        img = _load_folder_photo(Path(path))
        ih, iw = img.shape[:2]
        s = 2.0 * max(w / iw, h / ih)
        if s < 1:
            img = cv2.resize(img, (max(w, round(iw * s)), max(h, round(ih * s))), interpolation=cv2.INTER_AREA)
        if len(_decoded) >= 256:
            _decoded.pop(next(iter(_decoded)))
        _decoded[key] = img
    return _decoded[key]


def _object_crop(img: np.ndarray, side: int, frame: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A ``side`` x ``side`` patch of ``img`` at 0.35-1.5x the zoom at which the photo covers the frame:
    near the scene's own scale, so an object carries real structure (edges, parts), neither a flat
    piece of one surface nor a whole photo shrunk to a thumbnail."""
    ih, iw = img.shape[:2]
    s = max(frame[0] / iw, frame[1] / ih) * rng.uniform(0.35, 1.5)
    src = int(min(min(ih, iw), max(4, round(side / s))))
    y, x = int(rng.integers(0, ih - src + 1)), int(rng.integers(0, iw - src + 1))
    patch = img[y:y + src, x:x + src]
    interp = cv2.INTER_AREA if src > side else cv2.INTER_CUBIC
    out = cv2.resize(patch, (side, side), interpolation=interp)
    return np.ascontiguousarray(out[:, ::-1] if rng.random() < 0.5 else out)


def _cover_crop(img: np.ndarray, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Scale ``img`` to cover w x h (random extra zoom), random crop, random flip."""
    ih, iw = img.shape[:2]
    s = max(w / iw, h / ih) * rng.uniform(1.0, 1.3)
    nw, nh = max(w, int(np.ceil(iw * s))), max(h, int(np.ceil(ih * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    big = cv2.resize(img, (nw, nh), interpolation=interp)
    y, x = int(rng.integers(0, nh - h + 1)), int(rng.integers(0, nw - w + 1))
    out = big[y:y + h, x:x + w]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def _pink_noise(h: int, w: int, rng: np.random.Generator, beta: float = 1.0) -> np.ndarray:
    """Zero-mean unit-std 1/f^beta noise (natural-image-like amplitude spectrum), float32 (h, w)."""
    sh, sw = max(8, h // 2), max(8, w // 2)  # half resolution, upsampled: the fine scales are small
    fy = np.fft.fftfreq(sh)[:, None]
    fx = np.fft.rfftfreq(sw)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** beta
    spec[0, 0] = 0
    n = np.fft.irfft2(spec, s=(sh, sw)).astype(np.float32)
    n = cv2.resize(n, (w, h), interpolation=cv2.INTER_LINEAR)
    return (n - n.mean()) / (n.std() + 1e-8)


def dead_leaves(w: int, h: int, rng: np.random.Generator, r_min: float | None = None,
                r_max: float | None = None) -> np.ndarray:
    """A textured dead-leaves image: 8-bit sRGB (h, w, 3).

    Occluding discs, ellipses and rectangles with radii drawn from the scale-invariant density
    r^-3 (Lee, Mumford & Huang 2001), flat colours modulated by 1/f texture and shading gradients.
    """
    side = min(w, h)
    r_min = max(1.5, side / 300) if r_min is None else r_min
    r_max = max(2 * r_min, side / 4) if r_max is None else r_max
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = rng.integers(40, 200, 3, dtype=np.uint8)
    # Enough shapes to cover the frame several times with the r^-3 size law.
    mean_area = 2 * np.pi * r_min ** 2 * np.log(r_max / r_min)
    n = int(min(60000, 3 * w * h / mean_area))
    u = rng.random(n)
    radii = 1 / np.sqrt(1 / r_min ** 2 - u * (1 / r_min ** 2 - 1 / r_max ** 2))  # inverse CDF of r^-3
    radii = np.sort(radii)[::-1]  # big leaves first, so small ones stay visible on top
    xs, ys = rng.uniform(-0.05, 1.05, n) * w, rng.uniform(-0.05, 1.05, n) * h
    # A scene palette: a few base hues with varied value/saturation look more natural than RGB noise.
    palette = rng.uniform(0.05, 0.95, (6, 3))
    cols = palette[rng.integers(0, 6, n)] * rng.uniform(0.5, 1.2, (n, 1)) + rng.normal(0, 0.08, (n, 3))
    cols = (np.clip(cols, 0.02, 0.98) * 255).astype(int)
    kinds = rng.random(n)
    angles = rng.uniform(0, 180, n)
    aspect = rng.uniform(0.4, 1.0, n)
    for i in range(n):
        c = (int(xs[i]), int(ys[i]))
        r = max(1, int(radii[i]))
        col = tuple(int(v) for v in cols[i])
        if kinds[i] < 0.5:
            cv2.circle(canvas, c, r, col, -1, cv2.LINE_AA)
        elif kinds[i] < 0.8:
            cv2.ellipse(canvas, c, (r, max(1, int(r * aspect[i]))), angles[i], 0, 360, col, -1, cv2.LINE_AA)
        else:
            box = cv2.boxPoints(((xs[i], ys[i]), (2 * r, 2 * r * aspect[i]), angles[i]))
            cv2.fillConvexPoly(canvas, np.rint(box).astype(np.int32), col, cv2.LINE_AA)
    tex = _pink_noise(h, w, rng)
    shade = 1.0 + 0.12 * tex + 0.05 * rng.standard_normal((h, w)).astype(np.float32)
    out = canvas.astype(np.float32) * shade[:, :, None]
    return np.clip(out, 0, 255).astype(np.uint8)


def _source_image(cfg: SynthConfig, w: int, h: int, rng: np.random.Generator,
                  photos: tuple[str, ...] | None = None, patch: bool = False) -> np.ndarray:
    """An 8-bit sRGB (h, w, 3) image from a randomly chosen source.

    ``photos`` is the pool of the user's photos for this split (default: the whole ``images_dir``);
    ``patch`` cuts an object-sized piece (h == w) at the frame's scale instead of covering the frame.
    """
    sources = list(cfg.sources)
    if cfg.images_dir and "folder" not in sources:
        sources.append("folder")
    kind = sources[int(rng.integers(0, len(sources)))]
    if kind == "photos":
        photos_sk = _skimage_photos()
        if photos_sk:
            img = photos_sk[int(rng.integers(0, len(photos_sk)))]
            if np.ptp(img.reshape(-1, 3).mean(axis=0)) < 1:  # grey sample: tint it
                img = np.clip(img.astype(np.float32) * rng.uniform(0.6, 1.1, 3), 0, 255).astype(np.uint8)
            return _object_crop(img, w, cfg.size, rng) if patch else _cover_crop(img, w, h, rng)
    if kind == "folder":
        pool = photos if photos else tuple(str(p) for p in _folder_photos(str(cfg.images_dir)))
        img = _photo_at_scale(pool[int(rng.integers(0, len(pool)))], *cfg.size)
        return _object_crop(img, w, cfg.size, rng) if patch else _cover_crop(img, w, h, rng)
    return dead_leaves(w, h, rng)


def make_background(cfg: SynthConfig, rng: np.random.Generator,
                    photos: tuple[str, ...] | None = None) -> np.ndarray:
    """A scene background in linear light, float32 (H, W, 3); may exceed 1 at light sources."""
    w, h = cfg.size
    bg = _LIN_LUT[_source_image(cfg, w, h, rng, photos)] * np.float32(rng.uniform(*cfg.exposure))
    # A few small lamps / reflections above the white point: they clip identically in both frames.
    for _ in range(int(rng.integers(0, 3))):
        _add_highlight(bg, None, rng, cfg, radius=rng.uniform(1.5, 4) * max(w, h) / 512)
    if cfg.light_strips:  # no draw at 0: existing recipes render exactly as before
        for _ in range(int(rng.integers(0, cfg.light_strips + 1))):
            _add_light_strip(bg, rng, cfg)
    return bg


def _add_light_strip(img: np.ndarray, rng: np.random.Generator, cfg: SynthConfig) -> None:
    """Paint a straight lamp (or a dashed row of lamps) of linear radiance above 1, in place.

    The lamp covers what lies behind it (anti-aliased by one pixel at its edges and dash ends); most
    lamps also glow (a Gaussian halo of their light, as lens bloom spreads a real lamp), which is what
    makes a static lamp look like a motion streak of a highlight.
    """
    h, w = img.shape[:2]
    s = max(w, h) / 512
    half_len, half_wid = rng.uniform(10, 80) * s, max(0.75, rng.uniform(0.75, 3.0) * s)
    theta = rng.uniform(0, np.pi)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    glow = rng.uniform(1.0, 4.0) * s if rng.random() < 0.7 else 0.0
    reach = half_len + half_wid + 2 + 3 * glow
    y0, y1 = int(max(0, cy - reach)), int(min(h, cy + reach + 1))
    x0, x1 = int(max(0, cx - reach)), int(min(w, cx + reach + 1))
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    px, py = xx - cx, yy - cy
    along = px * np.cos(theta) + py * np.sin(theta)
    across = np.abs(py * np.cos(theta) - px * np.sin(theta))
    cover = np.clip(half_wid + 0.5 - across, 0, 1) * np.clip(half_len + 0.5 - np.abs(along), 0, 1)
    if rng.random() < 0.5:  # a row of separate lamps
        period = rng.uniform(3, 8) * half_wid + 2
        lit = rng.uniform(0.4, 0.8) * period
        phase = np.mod(along + half_len, period)
        cover *= np.clip(0.5 + np.minimum(phase, lit - phase), 0, 1)
    colour = np.float32(rng.uniform(*cfg.highlight_radiance)) * rng.uniform(0.85, 1.0, 3).astype(np.float32)
    region = img[y0:y1, x0:x1]
    light = cover[:, :, None] * colour
    region += light - cover[:, :, None] * region
    if glow:
        halo = cv2.GaussianBlur(light, (0, 0), glow, borderType=cv2.BORDER_CONSTANT)
        region += np.float32(rng.uniform(0.2, 1.0)) * halo


def _add_highlight(img: np.ndarray, alpha: np.ndarray | None, rng: np.random.Generator, cfg: SynthConfig,
                   radius: float) -> None:
    """Add a Gaussian specular spot (linear radiance above 1) in place, inside ``alpha`` if given."""
    h, w = img.shape[:2]
    if alpha is not None:
        ys, xs = np.nonzero(alpha > 0.9)
        if ys.size == 0:
            return
        k = int(rng.integers(0, ys.size))
        cy, cx = ys[k], xs[k]
    else:
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    r = max(1.0, radius)
    y0, y1 = int(max(0, cy - 3 * r)), int(min(h, cy + 3 * r + 1))
    x0, x1 = int(max(0, cx - 3 * r)), int(min(w, cx + 3 * r + 1))
    yy, xx = np.mgrid[y0:y1, x0:x1]
    g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)).astype(np.float32)
    peak = rng.uniform(*cfg.highlight_radiance)
    tint = rng.uniform(0.85, 1.0, 3).astype(np.float32)
    img[y0:y1, x0:x1] += (peak * g)[:, :, None] * tint


# ---------------------------------------------------------------------------------------------------
# Moving layers and their trajectories
# ---------------------------------------------------------------------------------------------------

@dataclass(eq=False)  # identity, not array contents, tells layers apart
class Layer:
    """A moving foreground object: a premultiplied linear RGBA sprite and its motion over t in [0, 1].

    The sprite point q (relative to the sprite centre) is at ``c(t) + s(t) R(omega t) q`` with
    ``c(t) = c0 + v t + a t^2 / 2`` and ``s(t) = 1 + sigma t``.
    """

    sprite: np.ndarray            # (h, w, 4) float32: premultiplied RGB, alpha
    hull: np.ndarray              # (K, 2) convex hull of the support, relative to the sprite centre
    c0: np.ndarray = field(default_factory=lambda: np.zeros(2))
    v: np.ndarray = field(default_factory=lambda: np.zeros(2))
    a: np.ndarray = field(default_factory=lambda: np.zeros(2))
    omega: float = 0.0
    sigma: float = 0.0

    def linear_part(self, t: float) -> np.ndarray:
        c, s = np.cos(self.omega * t), np.sin(self.omega * t)
        return (1 + self.sigma * t) * np.array([[c, -s], [s, c]])

    def centre(self, t: float) -> np.ndarray:
        return self.c0 + self.v * t + 0.5 * self.a * t * t

    def points(self, t: float) -> np.ndarray:
        """Hull points at time t, absolute (x, y)."""
        return self.hull @ self.linear_part(t).T + self.centre(t)

    def extent(self, times: np.ndarray, t0: float = 0.0) -> float:
        """Largest displacement of any object point from its position at ``t0`` over ``times``.

        Displacement is convex in the sprite point, so its maximum over the object is reached on the
        convex hull: this is exact, not an estimate.
        """
        p0 = self.points(t0)
        return float(max(np.linalg.norm(self.points(t) - p0, axis=1).max() for t in times))

    def affine(self, t: float, origin: tuple[int, int]) -> np.ndarray:
        """2x3 matrix mapping sprite pixel coordinates to coordinates of a ROI starting at ``origin``."""
        lin = self.linear_part(t)
        h, w = self.sprite.shape[:2]
        sc = np.array([(w - 1) / 2, (h - 1) / 2])
        off = self.centre(t) - np.asarray(origin, float) - lin @ sc
        return np.hstack([lin, off[:, None]]).astype(np.float64)


def _blob_alpha(side: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random star-convex blob filling a ``side`` x ``side`` box, anti-aliased, float32 in [0, 1]."""
    n = 96
    phi = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 6):
        r += rng.uniform(0, 0.25 / k) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    aspect = rng.uniform(0.45, 1.0)
    rad = (side / 2 - 1) / r.max()
    pts = np.stack([np.cos(phi) * r * rad, np.sin(phi) * r * rad * aspect], 1)
    rot = rng.uniform(0, np.pi)
    pts = pts @ np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]]).T
    pts += (side - 1) / 2
    canvas = np.zeros((side, side), np.uint8)
    shift = 4  # sub-pixel vertex precision
    cv2.fillPoly(canvas, [np.rint(pts * (1 << shift)).astype(np.int32)], 255, cv2.LINE_AA, shift)
    return canvas.astype(np.float32) / 255


def _superpixel_graph(img: np.ndarray, rng: np.random.Generator):
    """SLIC superpixels of ``img`` with their mean Lab colour, pixel count and 4-neighbour pairs."""
    from skimage.segmentation import slic

    labels = slic(img, n_segments=int(rng.integers(24, 64)), compactness=float(rng.uniform(5, 20)),
                  start_label=0, channel_axis=-1)
    n = int(labels.max()) + 1
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float64)
    count = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    mean = np.stack([np.bincount(labels.ravel(), lab[:, c], n) for c in range(3)], 1) / np.maximum(count, 1)[:, None]
    pairs = np.concatenate([np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], 1),
                            np.stack([labels[:-1].ravel(), labels[1:].ravel()], 1)])
    pairs = np.unique(np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1), axis=0)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return labels, mean, count, pairs, border


def _cutout_alpha(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An object-like outline cut from ``img`` (8-bit RGB, square): superpixels are merged, from the
    centre outwards, with the neighbour closest in colour to the region so far, until 30-60% of the
    patch is covered; segments touching the patch border are never used, so no outline is a straight
    crop edge. Holes filled, thin parts opened away, largest part kept, edges anti-aliased."""
    side = img.shape[0]
    if side < 16:
        return _blob_alpha(side, rng)
    labels, mean, count, pairs, border = _superpixel_graph(img, rng)
    usable = np.ones(len(count), bool)
    usable[border] = False
    c = (side - 1) // 2
    ys, xs = np.nonzero(usable[labels])
    if ys.size == 0:
        return _blob_alpha(side, rng)
    k = int(np.argmin((ys - c) ** 2 + (xs - c) ** 2))
    region = {int(labels[ys[k], xs[k]])}
    target = rng.uniform(0.3, 0.6) * side * side
    area = count[list(region)].sum()
    while area < target:
        inside = np.isin(pairs, list(region))
        touching = inside[:, 0] ^ inside[:, 1]
        cand = np.unique(np.where(inside[touching][:, 0], pairs[touching][:, 1], pairs[touching][:, 0]))
        cand = cand[usable[cand]]
        if cand.size == 0:
            break
        idx = list(region)
        centre = (mean[idx] * count[idx, None]).sum(0) / count[idx].sum()
        cost = np.linalg.norm(mean[cand] - centre, axis=1) * rng.uniform(0.8, 1.25, cand.size)
        best = int(cand[np.argmin(cost)])
        region.add(best)
        area += count[best]
    from scipy.ndimage import binary_fill_holes

    mask = binary_fill_holes(np.isin(labels, list(region))).astype(np.uint8)
    r = max(1, side // 40)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n < 2 or stats[1:, cv2.CC_STAT_AREA].max() < 0.08 * side * side:
        return _blob_alpha(side, rng)
    mask = (comp == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.float32)
    # Anti-aliased edge in 8-bit steps, like the blob's: no alpha below 1/255 whose (highlight-bright)
    # colour could show while the pixel stays out of the exact mask.
    return np.rint(np.clip(cv2.GaussianBlur(mask, (0, 0), 0.7), 0, 1) * 255).astype(np.float32) / 255


def _make_layer(cfg: SynthConfig, rng: np.random.Generator, side: int, gain: float,
                photos: tuple[str, ...] | None = None) -> Layer:
    """An object sprite of about ``side`` px with texture, optional highlights, and a padded canvas."""
    side = max(4, int(side))
    src = _source_image(cfg, side, side, rng, photos, patch=True)
    alpha = _cutout_alpha(src, rng) if cfg.object_shape == "cutout" else _blob_alpha(side, rng)
    tex = _LIN_LUT[src] * np.float32(gain * rng.uniform(0.8, 1.25))
    if rng.random() < cfg.highlight_prob:
        for _ in range(int(rng.integers(1, 4))):
            _add_highlight(tex, alpha, rng, cfg, radius=rng.uniform(0.02, 0.06) * side)
    # Pad so that rotation/scaling inside the warp never cuts the sprite.
    pad = int(np.ceil(side * 0.25)) + 2
    sprite = np.zeros((side + 2 * pad, side + 2 * pad, 4), np.float32)
    sprite[pad:pad + side, pad:pad + side, :3] = tex * alpha[:, :, None]
    sprite[pad:pad + side, pad:pad + side, 3] = alpha
    ys, xs = np.nonzero(sprite[:, :, 3] > 0)
    pts = np.stack([xs, ys], 1).astype(np.float32)
    # Pixel squares, not centres: the hull must contain every pixel the warp can make non-zero.
    corners = np.concatenate([pts + d for d in ((-.5, -.5), (-.5, .5), (.5, -.5), (.5, .5))])
    hull = cv2.convexHull(corners.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    hull -= np.array([(sprite.shape[1] - 1) / 2, (sprite.shape[0] - 1) / 2])
    return Layer(sprite=sprite, hull=hull)


def _set_motion(layer: Layer, extent: float, cfg: SynthConfig, rng: np.random.Generator) -> None:
    """Choose rotation, scaling, velocity and acceleration so the layer's extent equals ``extent``."""
    r_max = float(np.linalg.norm(layer.hull, axis=1).max())
    layer.omega = float(rng.choice([-1, 1]) * rng.uniform(0, cfg.rotation_share) * extent / r_max)
    layer.sigma = float(rng.choice([-1, 1]) * rng.uniform(0, cfg.scale_share) * extent / r_max)
    theta = rng.uniform(0, 2 * np.pi)
    u = np.array([np.cos(theta), np.sin(theta)])
    perp = np.array([-u[1], u[0]])
    # Acceleration: along u in [-max, max] (never reversing: |a_u| < 2 keeps v + a t forward) plus
    # a sideways part that bends the path.
    acc = rng.uniform(-1, 1) * cfg.max_acceleration * u + rng.uniform(-1, 1) * cfg.max_acceleration * perp
    times = np.linspace(0, 1, 33)
    lo, hi = 0.0, 4.0 * extent
    for _ in range(40):  # bisection on the speed: extent is continuous and increasing in it
        k = 0.5 * (lo + hi)
        layer.v, layer.a = k * u, k * acc
        if layer.extent(times) < extent:
            lo = k
        else:
            hi = k
    layer.v, layer.a = hi * u, hi * acc


def _swept_box(layer: Layer, times: np.ndarray) -> tuple[float, float, float, float]:
    pts = np.concatenate([layer.points(t) for t in times])
    return pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()


def _place(layer: Layer, w: int, h: int, rng: np.random.Generator) -> None:
    """Choose the start centre so the whole swept region stays inside the frame when it fits."""
    layer.c0 = np.zeros(2)
    x0, y0, x1, y1 = _swept_box(layer, np.linspace(0, 1, 17))
    cx = rng.uniform(-x0, w - 1 - x1) if x1 - x0 < w - 1 else (w - 1) / 2 - (x0 + x1) / 2
    cy = rng.uniform(-y0, h - 1 - y1) if y1 - y0 < h - 1 else (h - 1) / 2 - (y0 + y1) / 2
    layer.c0 = np.array([cx, cy])


# ---------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------

@dataclass
class Rendered:
    """One rendered pair. ``sharp``/``blur`` are 8-bit sRGB (H, W, 3); ``mask`` the exact blur mask;
    ``start_mask`` the pixels covered at t = 0 (used by tests); ``extents`` per layer in px."""

    sharp: np.ndarray
    blur: np.ndarray
    mask: np.ndarray
    start_mask: np.ndarray
    extents: list[float]
    blurred_area: float
    subframes: int
    sharp_linear: np.ndarray | None = None
    blur_linear: np.ndarray | None = None


def _roi(layers: list[Layer], times: np.ndarray, w: int, h: int) -> tuple[int, int, int, int]:
    boxes = np.array([_swept_box(l, times) for l in layers])
    x0 = int(max(0, np.floor(boxes[:, 0].min()) - 2))
    y0 = int(max(0, np.floor(boxes[:, 1].min()) - 2))
    x1 = int(min(w, np.ceil(boxes[:, 2].max()) + 3))
    y1 = int(min(h, np.ceil(boxes[:, 3].max()) + 3))
    return x0, y0, x1, y1


def _groups(layers: list[Layer], times: np.ndarray, w: int, h: int) -> list[list[Layer]]:
    """Layers whose swept boxes overlap, merged; different groups never share a pixel."""
    groups = [[l] for l in layers]
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = _roi(groups[i], times, w, h), _roi(groups[j], times, w, h)
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    # Keep depth order: the layer list order is back to front.
                    groups[i] = sorted(groups[i] + groups[j], key=layers.index)
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return groups


def _integrate(bg: np.ndarray, layers: list[Layer], times: np.ndarray, thr: float,
               out: np.ndarray, touched: np.ndarray) -> None:
    """Average the composite over ``times`` into ``out`` (in place) and mark touched pixels.

    Only the region the layers sweep is recomputed: outside it the composite is the background.
    """
    h, w = bg.shape[:2]
    for group in _groups(layers, times, w, h):
        x0, y0, x1, y1 = _roi(group, times, w, h)
        if x1 <= x0 or y1 <= y0:
            continue
        size = (x1 - x0, y1 - y0)
        bg_roi = bg[y0:y1, x0:x1]
        acc = np.zeros_like(bg_roi)
        amax = np.zeros(bg_roi.shape[:2], np.float32)
        frame = np.empty_like(bg_roi)
        for t in times:
            frame[:] = bg_roi
            for layer in group:
                warped = cv2.warpAffine(layer.sprite, layer.affine(t, (x0, y0)), size, flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                a = warped[:, :, 3]
                frame *= (1 - a)[:, :, None]   # "over": the layer hides what is behind it
                frame += warped[:, :, :3]      # premultiplied colour
                np.maximum(amax, a, out=amax)
            acc += frame
        avg = acc / len(times)
        # Where no layer ever covered a pixel its average is the background exactly; float32 summing
        # would leave rare one-level differences after encoding, so those pixels are copied.
        np.copyto(avg, bg_roi, where=(amax == 0)[:, :, None])
        out[y0:y1, x0:x1] = avg
        touched[y0:y1, x0:x1] |= amax > thr


def _n_subframes(layers: list[Layer], t0: float, span: float, cfg: SynthConfig) -> int:
    ext = max(l.extent(np.linspace(t0, t0 + span, 33), t0) for l in layers)
    return max(2, int(np.ceil(ext / cfg.subframe_step)))


def sharp_window(cfg: SynthConfig) -> tuple[float, float]:
    """(start, length) of the sharp exposure inside the long one, in units of the long exposure."""
    t0 = 0.0 if cfg.sharp_at == "start" else 0.5 - cfg.sharp_exposure / 2
    return t0, cfg.sharp_exposure


def _sensor(linear: np.ndarray, cfg: SynthConfig, z: np.ndarray | None) -> np.ndarray:
    """Shot + read noise scaled from the standard-normal field ``z`` (None: noise-free), saturation
    at the white point, sRGB encoding to 8 bits."""
    if z is None:
        return _encode8(linear.copy())
    shot = np.maximum(linear, 0) / cfg.full_well if np.isfinite(cfg.full_well) else 0
    sigma = np.sqrt(shot + cfg.read_noise ** 2, dtype=np.float32)
    return _encode8(linear + sigma * z)


def render_sample(cfg: SynthConfig, rng: np.random.Generator, background: np.ndarray | None = None,
                  keep_linear: bool = False, max_tries: int = 6, photos: tuple[str, ...] | None = None) -> Rendered:
    """Render one sharp/blurred pair with its exact mask over ``background`` (linear, (H, W, 3)).

    ``photos`` restricts the user's photos (``cfg.images_dir``) to one split's pool.

    Object sizes are solved so that the blurred area falls in ``cfg.blurred_area``: a first guess
    from the swept-area formula, then rescaled by the measured area until it fits.
    """
    w, h = cfg.size
    if background is None:
        background = make_background(cfg, rng, photos)
    if background.shape != (h, w, 3):
        raise ValueError(f"background must be {h}x{w}x3, got {background.shape}")
    n_obj = int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))
    target = rng.uniform(*cfg.blurred_area)
    share = rng.dirichlet(np.full(n_obj, 2.0))
    extents = rng.uniform(*cfg.blur_extent, n_obj)
    gain = float(rng.uniform(*cfg.exposure))
    layer_seeds = rng.integers(0, 2 ** 63, n_obj)
    place_seed = int(rng.integers(0, 2 ** 63))
    # First guess: a blob of side d sweeping E covers about 0.6 d^2 + 0.8 d E pixels.
    sides = []
    for s, e in zip(share, extents):
        a = target * w * h * s
        sides.append((-0.8 * e + np.sqrt(0.64 * e * e + 2.4 * a)) / 1.2)
    sides = np.maximum(np.array(sides), 4.0)
    lo, hi = cfg.blurred_area
    for attempt in range(max_tries):
        layers = []
        for side, e, ls in zip(sides, extents, layer_seeds):
            lrng = np.random.default_rng(int(ls))
            layer = _make_layer(cfg, lrng, side, gain, photos)
            _set_motion(layer, float(e), cfg, lrng)
            layers.append(layer)
        prng = np.random.default_rng(place_seed)
        for layer in layers:
            _place(layer, w, h, prng)
        s0, s_len = sharp_window(cfg)
        n_long = max(cfg.min_subframes, _n_subframes(layers, 0.0, 1.0, cfg))
        n_short = _n_subframes(layers, s0, s_len, cfg)
        t_long = (np.arange(n_long) + 0.5) / n_long  # midpoint rule over the exposure
        t_short = s0 + (np.arange(n_short) + 0.5) / n_short * s_len
        # Area from a cheap alpha-only pass at a quarter of the sub-frames (blobs are fat, so the
        # union hardly changes), then the exact mask from the full render below.
        area = _swept_area(layers, t_long[::4] if n_long >= 8 else t_long, w, h, cfg.mask_threshold)
        inside = lo + 0.05 * (hi - lo) <= area <= hi - 0.05 * (hi - lo)
        if not inside and attempt < max_tries - 1:
            sides = np.maximum(sides * np.sqrt(target / max(area, 1e-6)), 4.0)
            continue
        blur_lin = background.copy()
        sharp_lin = background.copy()
        touched = np.zeros((h, w), bool)
        _integrate(background, layers, t_long, cfg.mask_threshold, blur_lin, touched)
        _integrate(background, layers, t_short, cfg.mask_threshold, sharp_lin, touched)
        area = float(touched.mean())
        if lo <= area <= hi or attempt == max_tries - 1:
            break
        sides = np.maximum(sides * np.sqrt(target / max(area, 1e-6)), 4.0)
    start = np.zeros((h, w), bool)
    _integrate(background, layers, np.zeros(1), cfg.mask_threshold, np.empty_like(background), start)
    nrng = np.random.default_rng(int(rng.integers(0, 2 ** 63)))
    kept = (sharp_lin.copy(), blur_lin.copy()) if keep_linear else (None, None)
    noisy = np.isfinite(cfg.full_well) or cfg.read_noise > 0
    z_sharp = nrng.standard_normal(sharp_lin.shape, dtype=np.float32) if noisy else None
    z_blur = z_sharp if cfg.noise == "shared" or not noisy else nrng.standard_normal(blur_lin.shape, dtype=np.float32)
    sharp = _sensor(sharp_lin, cfg, z_sharp)
    blur = _sensor(blur_lin, cfg, z_blur)
    return Rendered(sharp=sharp, blur=blur, mask=touched, start_mask=start,
                    extents=[l.extent(np.linspace(0, 1, 65)) for l in layers], blurred_area=area,
                    subframes=n_long, sharp_linear=kept[0], blur_linear=kept[1])


def _swept_area(layers: list[Layer], times: np.ndarray, w: int, h: int, thr: float) -> float:
    touched = np.zeros((h, w), bool)
    for layer in layers:
        x0, y0, x1, y1 = _roi([layer], times, w, h)
        if x1 <= x0 or y1 <= y0:
            continue
        alpha = np.ascontiguousarray(layer.sprite[:, :, 3])
        amax = np.zeros((y1 - y0, x1 - x0), np.float32)
        for t in times:
            np.maximum(amax, cv2.warpAffine(alpha, layer.affine(t, (x0, y0)), (x1 - x0, y1 - y0),
                                            flags=cv2.INTER_LINEAR), out=amax)
        touched[y0:y1, x0:x1] |= amax > thr
    return float(touched.mean())


# ---------------------------------------------------------------------------------------------------
# Dataset generation
# ---------------------------------------------------------------------------------------------------

def split_scenes(cfg: SynthConfig) -> list[str]:
    """The split ('train' / 'test') of each scene, deterministic for ``cfg.seed``."""
    n = cfg.scenes
    n_test = int(round(cfg.test_fraction * n))
    if cfg.test_fraction > 0 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    test = set(np.random.default_rng([cfg.seed, 7]).permutation(n)[:n_test].tolist())
    return ["test" if i in test else "train" for i in range(n)]


def _sample_paths(out: Path, split: str, scene: str, seq: int, idx: int) -> tuple[Path, Path, Path]:
    """(sharp, blurred, mask) paths of one sample in the published layout under ``out``."""
    seq_name, idx_name = f"{seq:02d}", f"{idx:02d}"
    return (*pair_paths(out, split, scene, seq_name, idx_name),
            mask_path(default_masks_root(out), split, scene, seq_name, idx_name))


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per scene already uses the cores


def _sample_stats(r: Rendered, name: str, split: str) -> dict:
    return {"name": name, "split": split, "blurred_area": r.blurred_area, "extents": r.extents,
            "subframes": r.subframes}


def _render_scene(args: tuple) -> list[dict]:
    """Render the missing samples of one scene; returns the statistics of every sample of the scene
    that is not in ``known`` (samples already on disk are re-derived, not rewritten, so the summary
    describes everything on disk after an interrupted run)."""
    cfg, out, scene_i, split, photos, known = args
    out_p = Path(out)
    scene = f"s{scene_i + 1:02d}"
    jobs = []
    for seq in range(cfg.sequences_per_scene):
        for idx in range(cfg.images_per_sequence):
            name = f"{scene}/{seq:02d}/{idx:02d}"
            paths = _sample_paths(out_p, split, scene, seq, idx)
            # The mask is written last: if it exists, the pair before it is complete.
            done = all(p.is_file() and p.stat().st_size > 0 for p in paths)
            if not done or name not in known:
                jobs.append((seq, idx, name, paths, done))
    stats = []
    if not jobs:
        return stats
    background = make_background(cfg, np.random.default_rng([cfg.seed, scene_i, 1_000_003]), photos)
    for seq, idx, name, (p_sharp, p_blur, p_mask), done in jobs:
        r = render_sample(cfg, np.random.default_rng([cfg.seed, scene_i, seq, idx]), background, photos=photos)
        if not done:
            write_image(p_sharp, r.sharp)
            write_image(p_blur, r.blur)
            write_mask(p_mask, r.mask)
        stats.append(_sample_stats(r, name, split))
    return stats


def _previous_samples(summary_path: Path, cfg: SynthConfig) -> dict[str, dict]:
    """Per-sample statistics of an earlier run with the same configuration (empty if none)."""
    if not summary_path.is_file():
        return {}
    try:
        prev = json.loads(summary_path.read_text())
        if prev.get("config") == _config_dict(cfg):
            return {s["name"]: s for s in prev.get("samples", [])}
    except (OSError, ValueError, KeyError, TypeError):
        pass  # unreadable summary: rebuilt from the samples on disk
    return {}


def generate(out_dir: str | os.PathLike, config: SynthConfig | None = None, *, scenes: int | None = None,
             size: tuple[int, int] | None = None, seed: int | None = None, workers: int = 1,
             progress: bool = True, warn=None, **overrides) -> dict:
    """Write a synthetic locally blurred dataset in the ReLoBlur layout.

    ``OUT/dataset/{train,test}/sNN/SS/II_{sharp,blur}.png``, exact masks in ``OUT/masks/...`` and
    ``OUT/synth.json`` (the configuration, the photo split and per-sample statistics, rewritten after
    every scene). Deterministic for a given configuration; samples already on disk are skipped, so an
    interrupted run resumes, and the summary then still lists every sample on disk.

    With ``images_dir`` the photos are split by photo (:func:`photo_pools`): test scenes draw their
    backgrounds and objects only from photos no training scene uses. Unreadable photos are reported
    through ``warn`` (default: a Python warning) and skipped.

    Args:
        out_dir: output root.
        config: base configuration (default :class:`SynthConfig`).
        scenes, size, seed: shortcuts overriding the configuration; ``size`` is (width, height).
        workers: processes (scenes are rendered in parallel).
        progress: show a tqdm progress bar.
        warn: callable taking one message line for skipped photos.
        **overrides: any other :class:`SynthConfig` field.

    Returns:
        The summary written to ``synth.json``.
    """
    from tqdm import tqdm

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    cfg = config or SynthConfig()
    extra = {k: v for k, v in (("scenes", scenes), ("size", tuple(size) if size else None),
                               ("seed", seed)) if v is not None}
    cfg = replace(cfg, **extra, **overrides)
    if warn is None:
        def warn(msg):
            warnings.warn(msg, stacklevel=3)
    pools = photo_pools(cfg.images_dir, cfg.test_fraction, warn) if cfg.images_dir else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = split_scenes(cfg)
    summary_path = out / "synth.json"
    known = _previous_samples(summary_path, cfg)
    jobs = [(cfg, str(out), i, splits[i], pools.for_split(splits[i]) if pools else None, frozenset(known))
            for i in range(cfg.scenes)]
    summary = {"config": _config_dict(cfg), "samples": [],
               "splits": {f"s{i + 1:02d}": sp for i, sp in enumerate(splits)}}
    if pools is not None:
        summary["photos"] = {"train": list(pools.train), "test": list(pools.test), "shared": pools.shared,
                             "skipped": [{"path": p, "reason": r} for p, r in pools.skipped]}

    def record(stats: list[dict]) -> None:
        for st in stats:
            known[st["name"]] = st
        summary["samples"] = [known[k] for k in sorted(known)]
        write_json(summary_path, summary)

    per_scene = cfg.sequences_per_scene * cfg.images_per_sequence
    with tqdm(total=cfg.scenes * per_scene, desc="lbag synth", unit="img", disable=not progress) as bar:
        if workers > 1 and cfg.scenes > 1:
            # spawn, not fork: the parent's OpenCV thread pool (busy decoding photos) must not be inherited
            # mid-lock, which deadlocked forked workers.
            with ProcessPoolExecutor(max_workers=min(workers, cfg.scenes), initializer=_worker_init,
                                     mp_context=multiprocessing.get_context("spawn")) as pool:
                for stats in pool.map(_render_scene, jobs):
                    record(stats)
                    bar.update(per_scene)
        else:
            for job in jobs:
                record(_render_scene(job))
                bar.update(per_scene)
    record([])
    return summary


def _config_dict(cfg: SynthConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))
