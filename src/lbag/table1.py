"""The paper's Table 1 in one harness (Li et al., "Real-World Deep Local Motion Deblurring", AAAI 2023):
the architectures side by side (``lbag models``) and the table built from ``lbag evaluate`` outputs
(``lbag table``).

Parameters are counted and MACs measured with :class:`torch.utils.flop_counter.FlopCounterMode` on
networks built on the meta device, so even 2152x1436 costs neither memory nor compute time.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import write_text
from .metrics.evaluate import TABLE_COLUMNS
from .models.registry import ModelSpec, architectures, build, paper_row_for

__all__ = ["MAC_SIZES", "count_params", "count_macs", "model_rows", "format_models", "EvalEntry",
           "read_eval_dir", "parse_entry", "table1", "write_table1"]

# (height, width) of the two MAC figures: a training patch and a full ReLoBlur image.
MAC_SIZES = ((256, 256), (1436, 2152))


def _meta(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        return build(name).eval()


def count_params(name: str) -> int:
    """Unique parameters of architecture ``name`` (a tensor registered twice counts once)."""
    return sum(p.numel() for p in _meta(name).parameters())


def count_macs(name: str, height: int, width: int) -> int:
    """Multiply-accumulates of one forward pass at (1, 3, height, width): FlopCounterMode FLOPs / 2.

    Counted on the meta device; a network whose forward cannot run there (e.g. it opens
    ``torch.autocast(x.device.type)``, which rejects 'meta') is counted on fake CPU tensors instead
    (torch's FakeTensorMode: shapes only, no memory, no arithmetic).
    """
    from torch.utils.flop_counter import FlopCounterMode

    try:
        model = _meta(name)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, height, width, device="meta"))
    except Exception as meta_error:
        from torch._subclasses.fake_tensor import FakeTensorMode

        try:
            with FakeTensorMode(), torch.no_grad(), FlopCounterMode(display=False) as counter:
                build(name).eval()(torch.zeros(1, 3, height, width))
        except Exception:
            raise meta_error from None
    return int(counter.get_total_flops()) // 2


def _macs_or_none(name: str, h: int, w: int) -> tuple[int | None, str]:
    try:
        return count_macs(name, h, w), ""
    except Exception as exc:  # a network that cannot run on the meta device: say why, keep the list
        return None, f"MACs at {w}x{h} not countable ({type(exc).__name__}: {str(exc)[:120]})"


def model_rows(macs: bool = True) -> list[dict]:
    """One dict per architecture: name, family, paper, params, MACs at :data:`MAC_SIZES`, pad multiple,
    receptive field, tile overlap, published checkpoints and Table 1 rows."""
    rows = []
    for spec in architectures().values():
        row = _spec_row(spec)
        notes = []
        for h, w in MAC_SIZES:
            value, note = _macs_or_none(spec.name, h, w) if macs else (None, "")
            row[f"macs_{w}x{h}"] = value
            if note:
                notes.append(note)
        row["notes"] = notes
        rows.append(row)
    return rows


def _spec_row(spec: ModelSpec) -> dict:
    return {"name": spec.name, "family": spec.family, "paper": spec.paper, "params": count_params(spec.name),
            "pad_multiple": spec.pad_multiple, "receptive_field": spec.receptive_field,
            "tile_overlap": spec.tile_overlap,
            "checkpoints": [{"name": c.name, "source": c.source, "container": c.container,
                             "trained_on": c.trained_on} for c in spec.checkpoints],
            "table1": [{"method": r.method, **r.metrics(), "note": r.note} for r in spec.paper_rows]}


def _gmac(v: int | None) -> str:
    return "-" if v is None else f"{v / 1e9:,.1f}"


def format_models(rows: list[dict]) -> str:
    """Markdown: the architecture table, then the published checkpoints and notes."""
    (h1, w1), (h2, w2) = MAC_SIZES
    lines = [f"| name | family | parameters | GMAC {w1}x{h1} | GMAC {w2}x{h2} | pad | receptive field px "
             "| tile overlap px | Table 1 (PSNR / SSIM / PSNR_w / SSIM_w / PSNR_a) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        paper = "; ".join(f"{t['method']}: {t['psnr']:.2f} / {t['ssim']:.4f} / {t['psnr_w']:.2f} / "
                          f"{t['ssim_w']:.4f} / {t['psnr_a']:.2f}" for t in r["table1"]) or "-"
        lines.append(f"| {r['name']} | {r['family']} | {r['params']:,} | {_gmac(r[f'macs_{w1}x{h1}'])} | "
                     f"{_gmac(r[f'macs_{w2}x{h2}'])} | {r['pad_multiple']} | {r['receptive_field']:,} | "
                     f"{r['tile_overlap']} | {paper} |")
    lines += ["", "Published checkpoints (`lbag deblur --weights FILE` reads each container as published):", ""]
    for r in rows:
        for c in r["checkpoints"]:
            lines.append(f"- {r['name']}: {c['name']} ({c['trained_on']}), {c['container']}; {c['source']}")
    notes = [f"- {r['name']}: {n}" for r in rows for n in r["notes"]]
    notes += [f"- {r['name']}: Table 1 {t['method']}: {t['note']}" for r in rows for t in r["table1"] if t["note"]]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines)


# --- Table 1 from evaluation folders --------------------------------------------------------------
@dataclass(frozen=True)
class EvalEntry:
    """One ``lbag evaluate --out`` folder and the method label it gets in the table."""

    label: str
    path: Path
    summary: dict


def read_eval_dir(path: str | os.PathLike, label: str | None = None) -> EvalEntry:
    """Read ``path/summary.json``; the label defaults to the predictions folder's name (or ``path``'s).

    Raises:
        ValueError: no or an unreadable summary.json (the message names the file).
    """
    path = Path(path)
    summary_path = path / "summary.json" if path.is_dir() else path
    try:
        summary = json.loads(summary_path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{summary_path}: not found; pass folders written by `lbag evaluate --out`") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{summary_path}: unreadable ({exc})") from None
    if not isinstance(summary, dict) or "n_images" not in summary:
        raise ValueError(f"{summary_path}: not a summary written by `lbag evaluate`")
    if label is None:
        pred = (summary.get("protocol") or {}).get("pred")
        label = summary.get("label") or (Path(pred).name if pred else None) or summary_path.parent.name
    return EvalEntry(label, summary_path.parent, summary)


def parse_entry(arg: str) -> tuple[str | None, str]:
    """``LABEL=DIR`` or ``DIR`` -> (label or None, dir)."""
    if "=" in arg and not Path(arg).exists():
        label, _, path = arg.partition("=")
        return label or None, path
    return None, arg


def _fmt(value, decimals: int) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{decimals}f}"


def table1(entries: list[EvalEntry], paper: bool = True) -> tuple[str, str]:
    """Table 1 from evaluation summaries.

    Args:
        entries: one per method, in table order. The first summary that also evaluated the blurred
            inputs (``lbag evaluate --blurred``) gives the "Blurred input" row.
        paper: add the paper's row for each method it reports (matched by label, e.g. ``hinet``,
            ``SRN-DeblurNet``, ``lbag_plus``) and the difference.

    Returns:
        (markdown, csv text).
    """
    rows: list[tuple[str, Path, dict]] = []
    blurred = next((e for e in entries if isinstance(e.summary.get("blurred"), dict)), None)
    if blurred is not None:
        rows.append(("Blurred input", blurred.path, blurred.summary["blurred"]))
    rows += [(e.label, e.path, e.summary) for e in entries]
    header = "| Method | " + " | ".join(t for _, t, _ in TABLE_COLUMNS) + " | images |"
    md = [header, "|---|" + "---:|" * (len(TABLE_COLUMNS) + 1)]
    for label, _, s in rows:
        md.append(f"| {label} | " + " | ".join(_fmt(s.get(k), d) for k, _, d in TABLE_COLUMNS)
                  + f" | {s.get('n_images', '-')} |")
    matched = [(label, s, paper_row_for(label)) for label, _, s in rows] if paper else []
    matched = [m for m in matched if m[2] is not None]
    if matched:
        md += ["", "Paper, Table 1 (Li et al., AAAI 2023; ReLoBlur test set, full resolution), and measured "
               "minus paper:", "",
               "| Method | paper row | " + " | ".join(t for _, t, _ in TABLE_COLUMNS) + " | ΔPSNR | ΔPSNR_w |",
               "|---|---|" + "---:|" * (len(TABLE_COLUMNS) + 2)]
        for label, s, row in matched:
            ref = row.metrics()
            delta = [_fmt(None if s.get(k) is None else s[k] - ref[k], 2) for k in ("psnr", "psnr_w")]
            md.append(f"| {label} | {row.method} | " + " | ".join(_fmt(ref[k], d) for k, _, d in TABLE_COLUMNS)
                      + " | " + " | ".join(delta) + " |")
    return "\n".join(md) + "\n", _table_csv(rows, paper)


def _table_csv(rows: list[tuple[str, Path, dict]], paper: bool) -> str:
    keys = [k for k, _, _ in TABLE_COLUMNS]
    fields = ["method", "eval_dir", "n_images", "n_empty_mask", "n_ecc_failed", *keys]
    if paper:
        fields += ["paper_method", *(f"paper_{k}" for k in keys)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for label, path, s in rows:
        rec = {"method": label, "eval_dir": str(path), **{k: s.get(k) for k in fields[2:5]},
               **{k: "" if s.get(k) is None else f"{s[k]:.6f}" for k in keys}}
        row = paper_row_for(label) if paper else None
        if row is not None:
            rec["paper_method"] = row.method
            rec.update({f"paper_{k}": v for k, v in row.metrics().items()})
        writer.writerow(rec)
    return buf.getvalue()


def write_table1(out_dir: str | os.PathLike, markdown: str, csv_text: str) -> tuple[Path, Path]:
    """Write ``out_dir/table1.md`` and ``out_dir/table1.csv`` atomically."""
    out_dir = Path(out_dir)
    return write_text(out_dir / "table1.md", markdown), write_text(out_dir / "table1.csv", csv_text)
