"""``lbag data check``: validate a dataset folder in the ReLoBlur layout (Li et al., "Real-World Deep
Local Motion Deblurring", AAAI 2023).

The public release has known defects (0-byte and corrupt mask PNGs, a missing mask). This checker
decodes every file, reports each problem with its path, carries on with the rest, and summarises the
blurred-area statistics per split, so a user knows before training whether a set is usable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .layout import (ImageReadError, decode_stored, default_masks_root, find_pairs, mask_files, present_splits,
                     read_mask, stored_format)


@dataclass
class SplitReport:
    """Findings for one split. ``usable`` counts pairs with both images readable, same size, and a
    readable mask of that size."""

    split: str
    pairs: int = 0
    usable: int = 0
    empty_masks: int = 0
    areas: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def area_stats(self) -> dict[str, float]:
        """Blurred fraction of the frame over readable masks: mean/median/min/max, in [0, 1]."""
        if not self.areas:
            return {}
        a = np.asarray(self.areas)
        return {"mean": float(a.mean()), "median": float(np.median(a)), "min": float(a.min()),
                "max": float(a.max())}


@dataclass
class CheckReport:
    root: Path
    masks_root: Path
    splits: list[SplitReport]

    @property
    def problems(self) -> list[str]:
        return [p for s in self.splits for p in s.problems]

    @property
    def usable(self) -> bool:
        """A set is usable when at least one split has at least one fully usable pair."""
        return any(s.usable for s in self.splits)

    def format(self) -> str:
        """A human-readable report: one line per problem, then a summary table per split."""
        lines = [f"dataset: {self.root}", f"masks:   {self.masks_root}"]
        for s in self.splits:
            for p in s.problems:
                lines.append(f"  [{s.split}] {p}")
        lines.append("")
        lines.append(f"{'split':<8}{'pairs':>7}{'usable':>8}{'problems':>10}{'empty masks':>13}"
                     f"{'blurred area mean / median / min / max':>42}")
        for s in self.splits:
            st = s.area_stats()
            area = (f"{st['mean']:.1%} / {st['median']:.1%} / {st['min']:.1%} / {st['max']:.1%}"
                    if st else "-")
            lines.append(f"{s.split:<8}{s.pairs:>7}{s.usable:>8}{len(s.problems):>10}{s.empty_masks:>13}"
                         f"{area:>42}")
        lines.append("")
        lines.append("result: " + ("usable" if self.usable else "UNUSABLE (no complete pair)")
                     + (f", {len(self.problems)} problem(s) reported above" if self.problems else ", no problems"))
        return "\n".join(lines)


def _shape_or_problem(path: Path, what: str, problems: list[str], mask: bool = False):
    """The decoded mask (bool) or image (as stored: :func:`decode_stored`), or None after a problem."""
    try:
        arr = read_mask(path) if mask else decode_stored(path)
    except ImageReadError as exc:
        kind = "missing" if not path.exists() else "unreadable"
        problems.append(f"{kind} {what}: {exc}")
        return None
    return arr


def _kind(img: np.ndarray) -> tuple[bool, np.dtype]:
    """(colour?, depth) of a stored image: an alpha channel alone does not make two files differ."""
    return (img.ndim == 3 and img.shape[2] >= 3), img.dtype


def check_dataset(root: str | os.PathLike, masks_root: str | os.PathLike | None = None,
                  splits: tuple[str, ...] | None = None, progress: bool = False) -> CheckReport:
    """Decode every file of the dataset and collect its problems.

    Args:
        root: dataset root with ``dataset/{train,test}/...``.
        masks_root: mask folder (default ``ROOT/masks``).
        splits: splits to check (default: those of train/test that exist).
        progress: show a tqdm bar.

    Raises:
        FileNotFoundError: when none of the splits exists under ``ROOT/dataset``.
    """
    from tqdm import tqdm

    root = Path(root)
    mroot = Path(masks_root) if masks_root is not None else default_masks_root(root)
    if splits is None:
        splits = present_splits(root)
    reports = []
    for split in splits:
        rep = SplitReport(split)
        reports.append(rep)
        try:
            pairs = find_pairs(root, split, mroot)
        except FileNotFoundError as exc:
            rep.problems.append(str(exc))
            continue
        rep.pairs = len(pairs)
        listed = set()
        for pair in tqdm(pairs, desc=f"check {split}", unit="pair", disable=not progress):
            sharp = _shape_or_problem(pair.sharp, "sharp image", rep.problems)
            blur = _shape_or_problem(pair.blur, "blurred image", rep.problems)
            listed.add(pair.mask)
            mask = _shape_or_problem(pair.mask, "mask", rep.problems, mask=True)
            ok = sharp is not None and blur is not None and mask is not None
            if sharp is not None and blur is not None and sharp.shape[:2] != blur.shape[:2]:
                rep.problems.append(f"size mismatch: {pair.blur} is {blur.shape[1]}x{blur.shape[0]}, "
                                    f"{pair.sharp} is {sharp.shape[1]}x{sharp.shape[0]}")
                ok = False
            elif sharp is not None and blur is not None and _kind(sharp) != _kind(blur):
                # Readers replicate greyscale to RGB, so training would run, on a probably wrong file.
                rep.problems.append(f"format mismatch: {pair.blur} is {stored_format(blur)}, {pair.sharp} is "
                                    f"{stored_format(sharp)}")
            if mask is not None:
                ref = blur if blur is not None else sharp
                if ref is not None and mask.shape != ref.shape[:2]:
                    rep.problems.append(f"size mismatch: mask {pair.mask} is {mask.shape[1]}x{mask.shape[0]}, "
                                        f"images are {ref.shape[1]}x{ref.shape[0]}")
                    ok = False
                else:
                    rep.areas.append(float(mask.mean()))
                    if not mask.any():
                        rep.empty_masks += 1
                        rep.problems.append(f"empty mask (no blurred pixel): {pair.mask}")
            rep.usable += int(ok)
        # Masks without an image pair usually mean a renamed or deleted image.
        for m in mask_files(mroot, split):
            if m not in listed:
                rep.problems.append(f"orphan mask (no image pair): {m}")
    return CheckReport(root=root, masks_root=mroot, splits=reports)
