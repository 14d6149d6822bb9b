"""Labelled pictures of images and blur masks: side-by-side comparisons (``lbag deblur --compare``,
``lbag demo``, ``lbag compare``) and mask overlays. Pure numpy / OpenCV and no file I/O: inference draws
its comparisons with it without depending on the run-report layer (:mod:`lbag.report`)."""

from __future__ import annotations

import cv2
import numpy as np

from .pixels import to_uint

__all__ = ["comparison_picture", "mask_to_rgb", "overlay_mask"]


def _as_rgb_float(img: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{name}: expected an (H, W, 3) or (H, W) image, got shape {arr.shape}")
    return np.clip(arr, 0.0, 1.0)


def mask_to_rgb(mask: np.ndarray) -> np.ndarray:
    """A soft or binary mask (H, W) in [0, 1] as a grey (H, W, 3) picture."""
    m = np.asarray(mask, dtype=np.float32)
    if m.ndim == 3:
        m = m[..., 0]
    return np.repeat(np.clip(m, 0, 1)[:, :, None], 3, axis=2)


def overlay_mask(image: np.ndarray, mask: np.ndarray, colour=(1.0, 0.2, 0.2), strength: float = 0.5) -> np.ndarray:
    """Tint ``image`` (H, W, 3) in [0, 1] by ``mask`` (H, W) in [0, 1]: where the network sees blur."""
    img = _as_rgb_float(image, "image")
    m = np.clip(np.asarray(mask, dtype=np.float32).squeeze(), 0, 1)[:, :, None] * strength
    return img * (1 - m) + np.asarray(colour, np.float32) * m


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in the top-left corner on a dark band (scaled to the panel size)."""
    # OpenCV draws text on 8-bit images only; the picture is for viewing, so 8 bits lose nothing.
    out = np.ascontiguousarray(to_uint(panel, bits=8))
    h, w = out.shape[:2]
    scale = max(0.35, min(1.5, w / 700))
    thick = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    band = min(h, th + base + 8)
    out[:band, :min(w, tw + 10)] = (out[:band, :min(w, tw + 10)] * 0.35).astype(np.uint8)
    cv2.putText(out, text, (5, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out.astype(np.float32) / 255


def comparison_picture(panels: list[tuple[str, np.ndarray]], gap: int = 4, max_width: int = 4096) -> np.ndarray:
    """Labelled panels side by side (all the same size), float RGB in [0, 1].

    Args:
        panels: ``[(label, image (H, W, 3) or mask (H, W)), ...]`` with values in [0, 1].
        gap: white pixels between panels.
        max_width: the whole picture is downscaled (area interpolation) to at most this width.

    Returns:
        (H', W', 3) float32 picture.
    """
    if not panels:
        raise ValueError("comparison_picture needs at least one panel")
    imgs = [(lab, _as_rgb_float(img, lab)) for lab, img in panels]
    h, w = imgs[0][1].shape[:2]
    for lab, img in imgs:
        if img.shape[:2] != (h, w):
            raise ValueError(f"panel {lab!r} is {img.shape[1]}x{img.shape[0]}, expected {w}x{h}")
    total = len(imgs) * w + (len(imgs) - 1) * gap
    scale = min(1.0, max_width / total)
    if scale < 1.0:
        w2, h2 = max(1, int(w * scale)), max(1, int(h * scale))
        imgs = [(lab, cv2.resize(img, (w2, h2), interpolation=cv2.INTER_AREA)) for lab, img in imgs]
        h, w = h2, w2
    canvas = np.ones((h, len(imgs) * w + (len(imgs) - 1) * gap, 3), np.float32)
    for i, (lab, img) in enumerate(imgs):
        canvas[:, i * (w + gap):i * (w + gap) + w] = _label(img, lab)
    return canvas
