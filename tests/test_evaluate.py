"""Tests for lbag.metrics.evaluate and the ``lbag evaluate`` command on tiny ReLoBlur-style folders."""

import csv
import json
import math

import numpy as np
import pytest
import torch

from lbag.cli import main
from lbag.data.layout import write_image, write_mask
from lbag.metrics import (EvalOptions, EvaluationInputError, compute_metrics, compute_metrics_float, evaluate,
                          find_items)

H, W = 40, 56
NAMES = ("s01/00/00", "s01/00/01", "s02/03/00")


def _images(seed):
    rng = np.random.default_rng(seed)
    sharp = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    blur = np.clip(sharp.astype(int) + rng.integers(-40, 41, sharp.shape), 0, 255).astype(np.uint8)
    pred = np.clip(sharp.astype(int) + rng.integers(-10, 11, sharp.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((H, W), bool)
    mask[8:30, 10:40] = True
    return sharp, blur, pred, mask


@pytest.fixture()
def published(tmp_path):
    root, pred = tmp_path / "relo", tmp_path / "pred"
    expected = {}
    for i, name in enumerate(NAMES):
        sharp, blur, p, mask = _images(i)
        d = root / "dataset" / "test" / name.rsplit("/", 1)[0]
        idx = name.rsplit("/", 1)[1]
        write_image(d / f"{idx}_sharp.png", sharp)
        write_image(d / f"{idx}_blur.png", blur)
        write_image(pred / f"{name}.png", p)
        if i == 1:
            mask[:] = False  # an empty mask: PSNR_w / SSIM_w undefined
        write_mask(root / "masks" / "test" / f"{name}.png", mask)
        expected[name] = compute_metrics(p, sharp, torch.from_numpy(mask)[None, None], aligned=False)
    return root, pred, expected


def test_published_layout_summary_csv_and_blurred(published, tmp_path):
    root, pred, expected = published
    out = tmp_path / "report"
    s = evaluate(pred, root, out=out, blurred=True, options=EvalOptions(aligned=False), progress=False)
    assert s["n_images"] == 3 and s["n_empty_mask"] == 1 and s["n_failed"] == 0
    assert s["psnr"] == pytest.approx(np.mean([float(e["psnr"][0]) for e in expected.values()]))
    assert s["psnr_w"] == pytest.approx(np.mean([float(expected[n]["psnr_w"][0]) for n in (NAMES[0], NAMES[2])]))
    assert s["blurred"]["psnr"] < s["psnr"]  # noisier inputs than predictions by construction
    disk = json.loads((out / "summary.json").read_text())
    assert set(disk) >= {"psnr", "ssim", "psnr_w", "ssim_w", "psnr_a", "n_images", "n_empty_mask", "n_ecc_failed"}
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 6 and {r["source"] for r in rows} == {"pred", "blurred"}
    lines = s["table"].splitlines()
    assert lines[0].startswith("| Method | PSNR | SSIM | PSNR_w | SSIM_w | PSNR_a")
    assert lines[2].startswith("| Blurred input |")


def test_corrupt_file_reported_rest_evaluated(published):
    root, pred, _ = published
    (pred / "s01/00/01.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    (root / "masks/test/s02/03/00.png").write_bytes(b"")  # a 0-byte mask, as in the public release
    s = evaluate(pred, root, options=EvalOptions(aligned=False), progress=False)
    assert s["n_images"] == 2 and s["n_failed"] == 1
    assert "s01/00/01.png" in s["failed"][0]["error"]
    assert any("empty mask file" in n["note"] for n in s["notes"])
    assert s["psnr_w"] is not None  # the image with a readable mask still counts


def test_missing_and_mismatched_predictions_listed(published):
    root, pred, _ = published
    (pred / "s01/00/00.png").unlink()
    write_image(pred / "s02/03/00.png", np.zeros((H + 2, W, 3), np.uint8))
    with pytest.raises(EvaluationInputError) as err:
        find_items(pred, root)
    msg = str(err.value)
    assert "missing prediction" in msg and "s01/00/00.png" in msg
    assert "size mismatch" in msg and "s02/03/00.png" in msg


@pytest.mark.slow
def test_flat_layout_and_parallel_workers(tmp_path):
    gt, pred, masks = tmp_path / "gt", tmp_path / "pred", tmp_path / "masks"
    for i in range(2):
        sharp, _, p, mask = _images(10 + i)
        write_image(gt / f"img{i}.png", sharp)
        write_image(pred / f"img{i}.png", p)
        write_mask(masks / f"img{i}.png", mask)
    serial = evaluate(pred, gt, masks=masks, progress=False)
    parallel = evaluate(pred, gt, masks=masks, workers=2, progress=False)
    for k in ("psnr", "ssim", "psnr_w", "ssim_w", "psnr_a"):
        assert math.isfinite(serial[k]) and serial[k] == pytest.approx(parallel[k], abs=1e-9)
    assert serial["n_ecc_failed"] == 0


def test_cli_evaluate(published, tmp_path, capsys):
    root, pred, _ = published
    out = tmp_path / "cli_report"
    rc = main(["evaluate", "--pred", str(pred), "--gt", str(root), "--out", str(out), "--blurred",
               "--no-aligned", "--workers", "1"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| Blurred input |" in text and "| pred |" in text and "PSNR_a: " not in text
    assert (out / "summary.json").is_file()
    rc = main(["evaluate", "--pred", str(pred), "--gt", str(root), "--workers", "1"])
    assert rc == 0
    assert "PSNR_a: fast coarse-to-fine ECC" in capsys.readouterr().out
    rc = main(["evaluate", "--pred", str(tmp_path / "nope"), "--gt", str(root)])
    assert rc == 2
    assert "predictions folder not found" in capsys.readouterr().err


@pytest.mark.parametrize("metrics", [compute_metrics, compute_metrics_float])
def test_mask_empty_comes_from_the_mask_not_from_nan_values(metrics):
    torch.manual_seed(0)
    pred, gt = torch.rand(2, 3, 40, 50), torch.rand(2, 3, 40, 50)
    pred[1, 0, 0, 0] = float("nan")  # a broken image with a real mask is not "an empty mask"
    mask = torch.zeros(2, 1, 40, 50)
    mask[1, :, 5:20, 5:20] = 1
    assert metrics(pred, gt, mask, aligned=False)["mask_empty"].tolist() == [True, False]
