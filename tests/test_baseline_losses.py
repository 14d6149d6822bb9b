"""The baselines' published objectives: DeepDeblur multi-scale L1, SRN multi-scale MSE, HINet/NAFNet PSNR."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lbag.baseline_losses import (KINDS, MultiScaleL1Loss, MultiScaleMSELoss, PSNRLoss, baseline_loss,
                                  tf1_resize_bilinear)
from lbag.models.deepdeblur import DeepDeblur, gaussian_pyramid
from lbag.models.mimo_unet import DeblurOutput


def out(*images):
    return DeblurOutput(list(images), [None] * len(images))


def test_psnr_loss_is_basicsr_formula_summed_over_outputs_and_weighted():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 8, 8)
    a, b = target + 0.1 * torch.randn_like(target), target + 0.01 * torch.randn_like(target)

    def one(pred):
        return 10 / math.log(10) * torch.log(((pred - target) ** 2).mean(dim=(1, 2, 3)) + 1e-8).mean()

    res = baseline_loss("hinet")(out(a, b), target)  # HINet: both stages, weight 0.5
    assert torch.allclose(res.total, 0.5 * (one(a) + one(b)))
    assert res.terms["psnr"] == pytest.approx(float(one(a) + one(b)), rel=1e-5)
    assert res.terms["total"] == pytest.approx(float(res.total), rel=1e-5)
    # NAFNet: weight 1; the loss is minus the mean PSNR (data range 1)
    mse = ((b - target) ** 2).mean(dim=(1, 2, 3))
    psnr = (10 * torch.log10(1 / (mse + 1e-8))).mean()
    assert baseline_loss("nafnet")(out(b), target).total.item() == pytest.approx(-psnr.item(), rel=1e-5)
    assert PSNRLoss()(out(target), target).total.item() == pytest.approx(10 * math.log10(1e-8))


def test_deepdeblur_loss_compares_each_scale_with_the_gaussian_pyramid_in_0_255():
    target = torch.rand(1, 3, 16, 20)
    levels = gaussian_pyramid(target, 3)[::-1]  # coarse -> fine
    assert [tuple(lv.shape[-2:]) for lv in levels] == [(4, 5), (8, 10), (16, 20)]
    loss = baseline_loss("deepdeblur")
    assert loss(out(*levels), target).total.item() == pytest.approx(0.0, abs=1e-4)
    res = loss(out(*[lv + 1 / 255 for lv in levels]), target)  # one grey level off at every scale
    assert res.total.item() == pytest.approx(3.0, rel=1e-4)
    assert isinstance(loss, MultiScaleL1Loss) and res.n_nan == 0


def test_deepdeblur_loss_runs_on_the_model_output_of_any_size():
    torch.manual_seed(0)
    net = DeepDeblur(n_resblocks=1, n_feats=8)
    target = torch.rand(2, 3, 37, 45)
    res = baseline_loss("deepdeblur")(net(torch.rand(2, 3, 37, 45)), target)
    res.total.backward()
    assert torch.isfinite(res.total) and net.body_models[0].body[0].weight.grad.abs().sum() > 0


def test_tf1_bilinear_resize_has_no_half_pixel_offset():
    x = torch.arange(60.0).view(1, 1, 6, 10)
    assert torch.equal(tf1_resize_bilinear(x, (3, 5)), x[..., ::2, ::2])  # 2x: every 2nd pixel
    row = torch.tensor([0.0, 10.0, 20.0, 30.0, 40.0]).view(1, 1, 1, 5)
    # 5 -> 3: read positions 0, 5/3, 10/3 (the last upper neighbour clamped inside)
    expect = torch.tensor([0.0, 50 / 3, 100 / 3]).view(1, 1, 1, 3)
    assert torch.allclose(tf1_resize_bilinear(row, (1, 3)), expect)
    assert torch.equal(tf1_resize_bilinear(x, (6, 10)), x)


def test_srn_loss_sums_mse_over_scales():
    torch.manual_seed(0)
    target = torch.rand(1, 3, 16, 16)
    preds = [torch.rand(1, 3, s, s) for s in (4, 8, 16)]
    expect = sum(((p - tf1_resize_bilinear(target, (p.shape[-2], p.shape[-1]))) ** 2).mean() for p in preds)
    res = baseline_loss("srn")(out(*preds), target)
    assert isinstance(baseline_loss("srn"), MultiScaleMSELoss)
    assert torch.allclose(res.total, expect) and set(res.terms) == {"mse", "total"}


def test_a_nan_scale_is_dropped_and_counted():
    target = torch.rand(1, 3, 8, 8)
    preds = [torch.full((1, 3, 2, 2), float("nan")), torch.rand(1, 3, 4, 4), target.clone()]
    res = baseline_loss("srn")(out(*preds), target)
    assert res.n_nan == 1 and torch.isfinite(res.total)
    res = PSNRLoss()(out(torch.full_like(target, float("nan"))), target)
    assert res.n_nan == 1 and res.total.item() == 0.0 and res.total.requires_grad


def test_bad_inputs_and_kinds_are_clear_errors():
    target = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="does not match the target"):
        PSNRLoss()(out(torch.rand(1, 3, 8, 9)), target)
    with pytest.raises(ValueError, match="every output must match"):
        PSNRLoss()(out(torch.rand(1, 3, 4, 4), target), target)
    with pytest.raises(ValueError, match="unknown baseline loss"):
        baseline_loss("deblurganv3")
    assert sorted(KINDS) == ["deepdeblur", "hinet", "nafnet", "srn"]


def test_config_kind_is_validated_and_baseline_kinds_skip_the_ssim_patch_check():
    from lbag.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="loss.kind"):
        load_config(overrides={"loss": {"kind": "psnr"}})
    with pytest.raises(ConfigError, match="SSIM"):
        load_config(overrides={"data": {"patch_size": 32}})
    assert load_config(overrides={"data": {"patch_size": 32}, "loss": {"kind": "hinet"}}).loss.kind == "hinet"
    for family in ("deepdeblur", "srn", "hinet", "nafnet"):
        cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / f"baseline_{family}.yaml")
        assert cfg.loss.kind == family and cfg.data.patch_size == 256 and cfg.optim.max_steps == 300_000


def test_training_loop_uses_the_configured_objective(tmp_path):
    from lbag.config import load_config
    from lbag.data.layout import write_image, write_mask
    from lbag.train import train

    rng = np.random.default_rng(0)
    for split, n in (("train", 2), ("test", 1)):
        for i in range(n):
            d = tmp_path / "data" / "dataset" / split / "s01" / f"{i:02d}"
            write_image(d / "00_sharp.png", rng.random((40, 40, 3)).astype(np.float32))
            write_image(d / "00_blur.png", rng.random((40, 40, 3)).astype(np.float32))
            write_mask(tmp_path / "data" / "masks" / split / "s01" / f"{i:02d}" / "00.png", np.ones((40, 40), bool))
    cfg = load_config(overrides={
        "model": {"name": "lbag_small", "num_res": 1, "width": 8},  # 3 scales, like SRN's outputs
        "data": {"root": str(tmp_path / "data"), "patch_size": 32, "num_workers": 0},
        "loss": {"kind": "srn"},
        "optim": {"batch_size": 2, "max_steps": 1},
        "train": {"out_dir": str(tmp_path / "run"), "val_every": 0, "ckpt_every": 1, "log_every": 1,
                  "progress": False, "val_aligned": False},
    })
    result = train(cfg, log=lambda *a: None)
    logged = (tmp_path / "run" / "metrics.csv").read_text()
    assert result.step == 1 and math.isfinite(result.final_loss)
    assert "loss/mse" in logged and "loss/ssim" not in logged


def test_a_baseline_network_trains_from_its_config(tmp_path):
    """`lbag train` builds a Table 1 network by registry name and resumes it (SRN: the smallest)."""
    from lbag.config import load_config
    from lbag.data.layout import write_image, write_mask
    from lbag.models import load_model
    from lbag.train import train

    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        d = tmp_path / "data" / "dataset" / split / "s01" / "00"
        write_image(d / "00_sharp.png", rng.random((40, 40, 3)).astype(np.float32))
        write_image(d / "00_blur.png", rng.random((40, 40, 3)).astype(np.float32))
        write_mask(tmp_path / "data" / "masks" / split / "s01" / "00" / "00.png", np.ones((40, 40), bool))
    over = {"data": {"root": str(tmp_path / "data"), "patch_size": 32, "num_workers": 0},
            "optim": {"batch_size": 1, "max_steps": 1},
            "train": {"out_dir": str(tmp_path / "run"), "val_every": 0, "ckpt_every": 1, "log_every": 1,
                      "progress": False}}
    cfg = load_config("configs/baseline_srn.yaml", overrides=over)
    result = train(cfg, log=lambda *a: None)
    assert result.step == 1 and math.isfinite(result.final_loss)
    assert type(load_model(result.last_checkpoint)).__name__ == type(result.model).__name__ == "SRNDeblur"
    more = load_config("configs/baseline_srn.yaml", overrides={**over, "optim": {"batch_size": 1, "max_steps": 2}})
    assert train(more, resume=True, log=lambda *a: None).step == 2
