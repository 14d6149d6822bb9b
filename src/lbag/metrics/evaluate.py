"""The evaluation loop of *Real-World Deep Local Motion Deblurring* (Li et al., AAAI 2023): PSNR, SSIM,
PSNR_w, SSIM_w and PSNR_a of a folder of predictions against ReLoBlur-style ground truth, with a
per-image CSV, ``summary.json`` and the paper's Table 1 layout.

Two layouts are understood:

* published: ``GT`` is a dataset root (``GT/dataset/<split>/<scene>/<seq>/<idx>_sharp.png``, masks in
  ``GT/masks/<split>/<scene>/<seq>/<idx>.png``) or one split folder of it; predictions are
  ``PRED/<scene>/<seq>/<idx>.png`` (what ``lbag deblur`` writes for a dataset split);
* flat: ``GT/<name>.png``, ``PRED/<name>.png`` and ``MASKS/<name>.png``.

The metrics of each image come from :func:`lbag.metrics.batch.compute_metrics` and the means from
:func:`lbag.metrics.batch.summarize`, the pair training validation uses too.
"""

from __future__ import annotations

import csv
import io
import math
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import torch

from ..atomic import WriteError, check_output_dir, write_json, write_text
from ..data.layout import (ImageReadError, decode_image, find_pairs, image_size, published_root, read_image, read_mask,
                           sample_path)
from .aligned import describe_fast_path
from .batch import METRICS, compute_metrics, compute_metrics_float, summarize

__all__ = ["evaluate", "evaluate_one", "find_items", "format_table", "EvalItem", "EvalOptions",
           "EvaluationInputError", "png_size", "read_image", "read_mask", "ImageReadError"]
# Column titles and decimals of the paper's Table 1.
TABLE_COLUMNS = (("psnr", "PSNR", 2), ("ssim", "SSIM", 4), ("psnr_w", "PSNR_w", 2), ("ssim_w", "SSIM_w", 4),
                 ("psnr_a", "PSNR_a", 2))


class EvaluationInputError(ValueError):
    """The folders given to :func:`evaluate` do not match (missing files, size mismatches, no images)."""


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------

def png_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from an image header without decoding it (:func:`lbag.data.layout.image_size`);
    None when the header cannot be read."""
    dims = image_size(path)
    return None if dims is None else (dims[1], dims[0])


@dataclass(frozen=True)
class EvalItem:
    """One test image: its name and the files that belong to it (None where not applicable)."""

    name: str
    gt: Path
    pred: Path | None
    mask: Path | None
    blurred: Path | None


def find_items(pred: str | os.PathLike | None, gt: str | os.PathLike, masks: str | os.PathLike | None = None,
               split: str = "test", blurred: bool = False) -> list[EvalItem]:
    """Match predictions, ground truth, masks (and blurred inputs) by name.

    Args:
        pred: predictions folder, or None to evaluate only the blurred inputs.
        gt: a published dataset root, one of its split folders, or a flat folder of ``<name>.png``.
        masks: masks folder; default: the published ``masks/<split>`` next to the dataset, if any.
        split: split to evaluate in a published root.
        blurred: also locate the blurred inputs (published layout only).

    Returns:
        The items, sorted by name.

    Raises:
        EvaluationInputError: no ground truth found, predictions missing, or sizes that differ; the
            message lists every offending file.
    """
    gt = Path(gt)
    if not gt.is_dir():
        raise EvaluationInputError(f"{gt}: ground-truth folder not found")
    pred_dir = Path(pred) if pred is not None else None
    if pred_dir is not None and not pred_dir.is_dir():
        raise EvaluationInputError(f"{pred_dir}: predictions folder not found")
    published = published_root(gt, split)
    items: list[EvalItem] = []
    problems: list[str] = []
    if published is not None:
        root, split = published
        mask_dir = Path(masks) if masks is not None else None
        # --masks may be a masks root (holding <split>/...) or the split's own masks folder.
        split_level = mask_dir is not None and not (mask_dir / split).is_dir()
        for pair in find_pairs(root, split, masks_root=None if split_level else mask_dir):
            if not pair.sharp.is_file():
                problems.append(f"missing ground truth: {pair.sharp}")
                continue
            mask = sample_path(mask_dir, pair.scene, pair.seq, pair.idx) if split_level else pair.mask
            items.append(EvalItem(
                name=pair.name, gt=pair.sharp,
                pred=sample_path(pred_dir, pair.scene, pair.seq, pair.idx) if pred_dir is not None else None,
                mask=mask, blurred=pair.blur if blurred else None))
    else:
        if blurred:
            raise EvaluationInputError(f"{gt}: --blurred needs the published layout "
                                       f"(<root>/dataset/<split>/<scene>/<seq>/<idx>_blur.png)")
        mask_dir = Path(masks) if masks is not None else None
        for f in sorted(gt.glob("*.png")):
            items.append(EvalItem(name=f.stem, gt=f, pred=pred_dir / f.name if pred_dir is not None else None,
                                  mask=mask_dir / f.name if mask_dir is not None else None, blurred=None))
    if not items and not problems:
        raise EvaluationInputError(
            f"{gt}: no ground-truth images found (expected <root>/dataset/{split}/<scene>/<seq>/<idx>_sharp.png, "
            f"a split folder of that layout, or a flat folder of <name>.png)")
    if masks is not None and not Path(masks).is_dir():
        raise EvaluationInputError(f"{masks}: masks folder not found")

    for it in items:
        for kind, path in (("prediction", it.pred), ("blurred input", it.blurred)):
            if path is None:
                continue
            if not path.is_file():
                problems.append(f"missing {kind}: {path}")
                continue
            a, b = png_size(path), png_size(it.gt)
            # Unreadable headers are left for the per-image step to report as corrupt files.
            if a is not None and b is not None and a != b:
                problems.append(f"size mismatch: {path} is {a[1]}x{a[0]}, ground truth {it.gt} is {b[1]}x{b[0]}")
    if problems:
        shown = "\n  ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise EvaluationInputError(f"{len(problems)} problem(s) matching predictions to {gt}:\n  {shown}{more}")
    return items


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvalOptions:
    """How to evaluate. ``exact``: reference ECC; ``denominator``: PSNR_a 'all' (LBAG) or 'valid'."""

    exact: bool = False
    quantize: bool = True
    denominator: str = "all"
    aligned: bool = True


def _init_worker() -> None:
    # The pool already uses every core: one thread per worker avoids oversubscription.
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def evaluate_one(item: EvalItem, source: str, options: EvalOptions) -> dict:
    """Metrics of one image (``source`` 'pred' or 'blurred'); never raises for a bad file.

    Images are decoded in their native integer type (:func:`lbag.data.layout.decode_image`), which the
    quantised protocol takes as is (8-bit unchanged, 16-bit rounded to 8); with ``quantize=False`` they
    are read as float (:func:`lbag.data.layout.read_image`).

    Returns:
        A row dict: ``name``, ``source``, the five metrics (NaN where undefined), ``mask_empty``,
        ``ecc_failed``, ``note`` (e.g. an unreadable mask) and ``error`` (empty when fine).
    """
    row = {"name": item.name, "source": source, **{k: math.nan for k in METRICS}, "mask_empty": False,
           "ecc_failed": False, "note": "", "error": ""}
    path = item.pred if source == "pred" else item.blurred
    try:
        # The protocol takes the native integers; the float metrics float images.
        load, metrics = (decode_image, compute_metrics) if options.quantize else (read_image, compute_metrics_float)
        img, gt = load(path), load(item.gt)
    except ImageReadError as exc:
        row["error"] = str(exc)
        return row
    if img.shape != gt.shape:
        row["error"] = f"{path}: size {img.shape[1]}x{img.shape[0]} differs from ground truth {gt.shape[1]}x{gt.shape[0]}"
        return row
    mask = None
    if item.mask is not None:
        try:
            mask = read_mask(item.mask)
            if mask.shape != gt.shape[:2]:
                row["note"] = f"{item.mask}: mask size {mask.shape[1]}x{mask.shape[0]} differs from the image"
                mask = None
        except ImageReadError as exc:
            row["note"] = f"mask unusable, PSNR_w/SSIM_w skipped: {exc}"
    m = metrics(img, gt, None if mask is None else torch.from_numpy(mask)[None, None], aligned=options.aligned,
                exact=options.exact, denominator=options.denominator)
    for k in METRICS:
        row[k] = float(m[k][0])
    row["mask_empty"] = bool(m["mask_empty"][0])
    row["ecc_failed"] = bool(m["ecc_failed"][0])
    return row


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    return x


def format_table(rows: dict[str, dict]) -> str:
    """The paper's Table 1 layout (Markdown): one row per method, PSNR / SSIM / PSNR_w / SSIM_w / PSNR_a."""
    lines = ["| Method | " + " | ".join(t for _, t, _ in TABLE_COLUMNS) + " |",
             "|---|" + "---:|" * len(TABLE_COLUMNS)]
    for label, s in rows.items():
        cells = [("-" if s.get(k) is None else f"{s[k]:.{d}f}") for k, _, d in TABLE_COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate(pred: str | os.PathLike | None, gt: str | os.PathLike, masks: str | os.PathLike | None = None,
             split: str = "test", out: str | os.PathLike | None = None, blurred: bool = False,
             options: EvalOptions = EvalOptions(), workers: int = 1, progress: bool = True,
             label: str | None = None) -> dict:
    """Evaluate a folder of predictions (and/or the blurred inputs) with the published protocol.

    Args:
        pred: predictions folder (None: only the blurred inputs, needs ``blurred=True``).
        gt: dataset root, split folder or flat folder (see :func:`find_items`).
        masks: masks folder (default: the published one next to the dataset).
        split: split of a published root.
        out: report folder for ``per_image.csv``, ``summary.json`` and ``table.md`` (None: no files).
        blurred: also evaluate the blurred inputs, the baseline row.
        options: :class:`EvalOptions`.
        workers: processes (1 runs in this process).
        progress: show a tqdm bar.
        label: name of the prediction row in the table (default: the predictions folder name).

    Returns:
        The summary dict: the means ``psnr``, ``ssim``, ``psnr_w``, ``ssim_w``, ``psnr_a`` and counts
        ``n_images``, ``n_empty_mask``, ``n_ecc_failed``, ``n_failed`` of the predictions (of the
        blurred inputs when ``pred`` is None), plus ``blurred`` (the same for the blurred inputs) when
        asked, ``failed`` (file errors), ``protocol`` and ``table`` (the printed table).
    """
    if pred is None and not blurred:
        raise EvaluationInputError("nothing to evaluate: give a predictions folder and/or ask for the blurred inputs")
    if options.denominator not in ("all", "valid"):
        raise EvaluationInputError(f"denominator must be 'all' or 'valid', got {options.denominator!r}")
    items = find_items(pred, gt, masks, split, blurred)
    if out is not None:
        check_output_dir(out)  # before the work: a file, no permission or a read-only disk fail here
    tasks = [(it, src) for src in (("blurred",) if blurred else ()) + (("pred",) if pred is not None else ())
             for it in items]
    from tqdm.auto import tqdm

    rows: list[dict] = []
    bar = tqdm(total=len(tasks), desc="evaluate", unit="img", disable=not progress)
    if workers <= 1:
        for it, src in tasks:
            rows.append(evaluate_one(it, src, options))
            bar.update()
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker) as pool:
            futures = [pool.submit(evaluate_one, it, src, options) for it, src in tasks]
            for fut in as_completed(futures):
                rows.append(fut.result())
                bar.update()
    bar.close()
    rows.sort(key=lambda r: (r["source"] != "blurred", r["name"]))

    by_source = {src: summarize([r for r in rows if r["source"] == src]) for src in ("blurred", "pred")
                 if any(r["source"] == src for r in rows)}
    table_rows = {}
    if "blurred" in by_source:
        table_rows["Blurred input"] = by_source["blurred"]
    if "pred" in by_source:
        table_rows[label or (Path(pred).name or str(pred))] = by_source["pred"]
    summary = dict(by_source["pred" if "pred" in by_source else "blurred"])
    if "pred" in by_source and "blurred" in by_source:
        summary["blurred"] = by_source["blurred"]
    summary["failed"] = [{"name": r["name"], "source": r["source"], "error": r["error"]} for r in rows if r["error"]]
    summary["notes"] = [{"name": r["name"], "source": r["source"], "note": r["note"]} for r in rows if r["note"]]
    summary["protocol"] = {**asdict(options), "ecc": "reference full-resolution" if options.exact else
                           describe_fast_path(), "gt": str(gt),
                           "pred": None if pred is None else str(pred), "split": split}
    summary["table"] = format_table(table_rows)

    if out is not None:
        try:
            write_report(out, rows, summary)
        except WriteError as exc:
            exc.summary = summary  # the finished results travel with the error (the CLI prints them)
            raise
    return summary


def write_report(out: str | os.PathLike, rows: list[dict], summary: dict) -> None:
    """Write ``per_image.csv``, ``summary.json`` and ``table.md`` into ``out`` (atomically, each).

    Raises:
        WriteError: a file cannot be written (naming it).
    """
    out = Path(out)
    fields = ["name", "source", *METRICS, "mask_empty", "ecc_failed", "note", "error"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{r[k]:.6f}" if isinstance(r[k], float) else r[k]) for k in fields})
    write_text(out / "per_image.csv", buf.getvalue())
    write_json(out / "summary.json", _json_safe(summary))
    write_text(out / "table.md", summary["table"] + "\n")
