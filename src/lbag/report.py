"""Pictures for local motion deblurring runs (Li et al., "Real-World Deep Local Motion Deblurring",
AAAI 2023): side-by-side comparisons with the predicted blur mask, and training curves / validation
metrics drawn from a run folder's ``metrics.csv`` (written by :mod:`lbag.train`)."""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from .atomic import atomic_path, check_output_file

__all__ = ["comparison_picture", "mask_to_rgb", "overlay_mask", "plot_run", "read_metrics_csv"]


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
    out = np.ascontiguousarray(np.rint(np.clip(panel, 0, 1) * 255).astype(np.uint8))
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


# --- training curves ------------------------------------------------------------------------------
def read_metrics_csv(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read a run's long-format ``metrics.csv`` into ``{key: (steps, values)}``.

    A row that cannot be parsed is skipped (a run killed mid-write may leave a partial last line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics.csv (is this a run folder written by lbag train?)")
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    try:
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header != ["step", "time", "key", "value"]:
                raise ValueError(f"{path}: unexpected header {header}; expected step,time,key,value")
            for row in reader:
                if len(row) != 4:
                    continue
                try:
                    series[row[2]].append((int(row[0]), float(row[3])))
                except ValueError:
                    continue
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text CSV file (byte {exc.start} cannot be decoded)") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: malformed CSV ({exc})") from None
    out = {}
    for key, pts in series.items():
        pts.sort()
        out[key] = (np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
    return out


def plot_run(run_dir: str | os.PathLike, out_path: str | os.PathLike | None = None) -> Path:
    """Draw the training losses, learning rate, speed and validation metrics of a run as one PNG.

    Args:
        run_dir: run folder holding ``metrics.csv``.
        out_path: PNG to write (default ``RUN_DIR/report.png``), atomically.

    Returns:
        The written path.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    out_path = Path(out_path) if out_path is not None else run_dir / "report.png"
    series = read_metrics_csv(run_dir / "metrics.csv")
    check_output_file(out_path)  # before drawing: a folder in the way, no permission, read-only
    if not series:
        raise ValueError(f"{run_dir / 'metrics.csv'}: no logged values yet")
    # Drop series with no finite value (e.g. PSNR_a when validation ran without alignment) and counters.
    series = {k: v for k, v in series.items() if np.isfinite(v[1]).any()}
    if not series:
        raise ValueError(f"{run_dir / 'metrics.csv'}: no finite value in any logged series; nothing to draw")
    losses = sorted(k for k in series if k.startswith("loss/") and k != "loss/nan_terms")
    vals = sorted(k for k in series if k.startswith("val/") and not k.startswith("val/n_"))  # n_*: counts
    groups = [("training loss", losses, True), ("learning rate", ["lr"], True), ("speed (steps/s)", ["it_per_s"], False)]
    groups += [(k[4:], [k], False) for k in vals]
    groups = [(t, [k for k in ks if k in series], logy) for t, ks, logy in groups]
    groups = [g for g in groups if g[1]]
    cols = 3
    rows = math.ceil(len(groups) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (title, keys, logy) in zip(axes.flat, groups):
        for k in keys:
            steps, v = series[k]
            ok = np.isfinite(v)
            ax.plot(steps[ok], v[ok], marker="o" if ok.sum() < 30 else None, ms=3, lw=1.2,
                    label=k.split("/", 1)[-1])
        if logy and all((series[k][1][np.isfinite(series[k][1])] > 0).all() for k in keys):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.suptitle(str(run_dir))
    fig.tight_layout()
    try:
        with atomic_path(out_path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return out_path
