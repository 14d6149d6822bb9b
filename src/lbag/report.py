"""Pictures of local motion deblurring training runs (Li et al., "Real-World Deep Local Motion
Deblurring", AAAI 2023): training curves and validation metrics drawn from a run folder's
``metrics.csv`` (written by :mod:`lbag.train`). Side-by-side image comparisons are in
:mod:`lbag.panels`."""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from .atomic import atomic_path, check_output_file

__all__ = ["plot_run", "read_metrics_csv"]


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
