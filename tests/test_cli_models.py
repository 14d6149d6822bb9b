"""``lbag models``, ``lbag table`` and ``lbag compare`` on tiny fake evaluation folders."""

import csv
import json

import cv2
import numpy as np
import pytest

from lbag.cli import main
from lbag.data.layout import write_image, write_mask
from lbag.metrics import EvalOptions, evaluate

H, W = 40, 56
NAMES = ("s01/00/00", "s01/00/01")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A published-layout test split, two methods' outputs and their `lbag evaluate` folders."""
    tmp = tmp_path_factory.mktemp("t1")
    rng = np.random.default_rng(0)
    root = tmp / "relo"
    for name in NAMES:
        scene_seq, idx = name.rsplit("/", 1)
        sharp = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        blur = np.clip(sharp.astype(int) + rng.integers(-40, 41, sharp.shape), 0, 255).astype(np.uint8)
        write_image(root / "dataset" / "test" / scene_seq / f"{idx}_sharp.png", sharp)
        write_image(root / "dataset" / "test" / scene_seq / f"{idx}_blur.png", blur)
        mask = np.zeros((H, W), bool)
        mask[5:20, 8:30] = True
        mask[28:36, 40:52] = True
        write_mask(root / "masks" / "test" / f"{name}.png", mask)
        for method, noise in (("hinet", 20), ("lbag_plus", 8)):
            pred = np.clip(sharp.astype(int) + rng.integers(-noise, noise + 1, sharp.shape), 0, 255)
            write_image(tmp / "out" / method / f"{name}.png", pred.astype(np.uint8))
    evals = {}
    for method in ("hinet", "lbag_plus"):
        evals[method] = tmp / "eval" / method
        evaluate(tmp / "out" / method, root, out=evals[method], blurred=method == "hinet",
                 options=EvalOptions(aligned=False), progress=False)
    return root, tmp / "out", evals


@pytest.mark.slow
def test_models_lists_every_architecture(capsys):
    assert main(["models", "--no-macs"]) == 0
    out = capsys.readouterr().out
    for name in ("srn_deblur", "lbag", "mimo_unet_plus", "lbag_small"):
        assert f"| {name} |" in out
    assert "6,881,251" in out and "16,109,670" in out
    assert "LBAG+: 34.85 / 0.9257 / 28.32 / 0.8734 / 35.53" in out and "MIMO-UNetPlus.pkl" in out
    assert main(["models", "--no-macs", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    srn = next(r for r in data["architectures"] if r["name"] == "srn_deblur")
    assert srn["params"] == 6_881_251 and srn["pad_multiple"] == 16 and srn["table1"][0]["psnr"] == 34.30


def test_models_identify(tmp_path, capsys):
    import torch

    from lbag.models import srn_deblur

    torch.save({"params": srn_deblur().state_dict()}, tmp_path / "srn.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk" * 8)
    assert main(["models", "--identify", str(tmp_path / "srn.pth")]) == 0
    assert capsys.readouterr().out.strip().endswith("srn.pth: srn_deblur")
    assert main(["models", "--identify", str(tmp_path / "junk.pth")]) == 1
    assert "junk.pth: not a readable PyTorch checkpoint" in capsys.readouterr().out


def test_table_markdown_csv_and_paper_rows(dataset, tmp_path, capsys):
    _root, _out, evals = dataset
    out = tmp_path / "table"
    assert main(["table", str(evals["hinet"]), f"LBAG+={evals['lbag_plus']}", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    md = (out / "table1.md").read_text()
    assert md in printed
    lines = md.splitlines()
    assert lines[0].startswith("| Method | PSNR | SSIM | PSNR_w | SSIM_w | PSNR_a | images |")
    assert lines[2].startswith("| Blurred input |") and lines[3].startswith("| hinet |")
    assert lines[4].startswith("| LBAG+ |")
    assert "| hinet | HINet | 34.36 | 0.9151 | 27.64 | 0.8510 | 34.95 |" in md
    assert "| LBAG+ | LBAG+ | 34.85 |" in md
    rows = list(csv.DictReader((out / "table1.csv").open()))
    assert [r["method"] for r in rows] == ["Blurred input", "hinet", "LBAG+"]
    summary = json.loads((evals["hinet"] / "summary.json").read_text())
    assert float(rows[1]["psnr"]) == pytest.approx(summary["psnr"], abs=1e-6)
    assert rows[1]["paper_method"] == "HINet" and float(rows[1]["paper_psnr_w"]) == 27.64
    assert rows[0]["paper_method"] == "" and float(rows[2]["psnr"]) > float(rows[1]["psnr"])
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # atomic writes leave no temp files


def test_table_rejects_a_folder_without_summary(tmp_path, capsys):
    assert main(["table", str(tmp_path)]) == 2
    assert "summary.json: not found" in capsys.readouterr().err


def test_compare_draws_crops_of_every_method(dataset, tmp_path):
    root, out, _evals = dataset
    png = tmp_path / "fig6.png"
    args = ["compare", f"HINet={out / 'hinet'}", str(out / "lbag_plus"), "--gt", str(root), "-o", str(png),
            "--size", "16", "--zoom", "2", "--image", "s01/00/01"]
    assert main(args) == 0
    img = cv2.imread(str(png))
    # 2 crops (the mask's two regions) x 32 px, 8 px apart; input, 2 methods, ground truth, mask: 5 x 32 + 4 x 4
    assert img.shape == (2 * 32 + 8, 5 * 32 + 4 * 4, 3)
    assert main([*args[:-2], "--crop", "0,0,20", "--crop", "30,20,20"]) == 0  # explicit crops
    assert cv2.imread(str(png)).shape == (2 * 40 + 8, 5 * 40 + 4 * 4, 3)


def test_compare_errors_are_one_line(dataset, tmp_path, capsys):
    root, out, _evals = dataset
    png = tmp_path / "x.png"
    assert main(["compare", str(tmp_path / "nope"), "--gt", str(root), "-o", str(png)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["compare", str(out / "hinet"), "--gt", str(root), "-o", str(png), "--image", "s09/00/00"]) == 2
    assert "image 's09/00/00' is not in the ground truth" in capsys.readouterr().err
    assert main(["compare", str(out / "hinet"), "--gt", str(root), "-o", str(png), "--crop", "1,2"]) == 2
    assert "expected X,Y,SIZE" in capsys.readouterr().err


def test_deblur_and_evaluate_with_a_baseline_checkpoint(dataset, tmp_path, capsys):
    import torch

    from lbag.models import srn_deblur

    root, _out, _evals = dataset
    torch.manual_seed(0)
    weights = tmp_path / "srn.pth"
    torch.save({"params": srn_deblur().state_dict()}, weights)  # a BasicSR-style container
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "srn_out"
        assert main(["deblur", "--quiet", str(root), "-o", str(out), "--weights", str(weights), "--tile", "40",
                     "--overlap", "8"]) == 0
    finally:
        torch.set_num_threads(n)
    printed = capsys.readouterr().out
    assert "channels_last" in printed  # bf16 is chosen automatically for the MIMO-UNet family only
    assert all(cv2.imread(str(out / f"{name}.png")).shape == (H, W, 3) for name in NAMES)
    report = tmp_path / "srn_eval"
    assert main(["evaluate", "--pred", str(out), "--gt", str(root), "--out", str(report), "--no-aligned",
                 "--workers", "1"]) == 0
    assert json.loads((report / "summary.json").read_text())["n_images"] == len(NAMES)
