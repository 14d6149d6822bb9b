"""Tiled full-resolution inference (lbag.infer): geometry, blending, agreement with untiled output."""

import math

import numpy as np
import pytest
import torch

from lbag.infer import (
    ALIGN,
    DeblurResult,
    _ramp,
    auto_tile_size,
    blend_weights,
    bytes_per_pixel,
    collect_inputs,
    deblur_tensor,
    tile_starts,
)
from lbag.models import DeblurOutput, lbag_small, mimo_unet


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = lbag_small(num_res=1, width=8).eval()
    # Random init gives a near-zero residual; scale the head so the output depends on the input a lot.
    with torch.no_grad():
        for p in m.feat_extract[5].parameters():
            p.mul_(30)
    return m


@pytest.mark.parametrize("length,tile,overlap", [(100, 32, 8), (256, 64, 16), (64, 64, 16), (36, 32, 8)])
def test_tile_starts_cover_and_align(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] == max(0, length - tile)
    assert all(s % ALIGN == 0 for s in starts)
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered.all()
    for a, b in zip(starts, starts[1:]):
        assert a + tile - b >= overlap - ALIGN + 1  # overlap kept up to the alignment


def test_ramps_are_complementary():
    r = _ramp(16)
    assert torch.allclose(r + r.flip(0), torch.ones(16), atol=1e-6)
    assert r[:4].max() == 0 and r[-4:].min() == 1
    w = blend_weights(40, 16, 8)
    assert w.shape == (40,) and w.min() > 0 and w[16:32].eq(1).all()


def test_untiled_equals_model(model):
    x = torch.rand(1, 3, 45, 61)
    res = deblur_tensor(model, x, tile=0)
    with torch.no_grad():
        ref = model(x)
    assert isinstance(res, DeblurResult) and res.tiles == 1
    assert torch.allclose(res.image, ref.images[-1].clamp(0, 1), atol=1e-6)
    assert torch.allclose(res.mask, ref.masks[-1], atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 3, 97, 130), (2, 3, 64, 77)])
def test_tiled_close_to_untiled(model, shape):
    torch.manual_seed(1)
    x = torch.rand(*shape)
    full = deblur_tensor(model, x, tile=0)
    tiled = deblur_tensor(model, x, tile=48, overlap=24)
    assert tiled.tiles > 1 and tiled.image.shape == x.shape and tiled.mask.shape == (shape[0], 1) + shape[2:]
    mse = ((full.image - tiled.image) ** 2).mean().item()
    assert 10 * math.log10(1 / max(mse, 1e-20)) > 45
    # Blending matters: a single-tile answer with no overlap would show seams, i.e. be worse.
    seamed = deblur_tensor(model, x, tile=48, overlap=0)
    mse_seam = ((full.image - seamed.image) ** 2).mean().item()
    assert mse_seam > mse


def test_three_dim_input_and_ungated_model():
    torch.manual_seed(0)
    m = mimo_unet(num_res=1, width=8).eval()
    x = torch.rand(3, 40, 52)
    res = deblur_tensor(m, x, tile=32, overlap=8)
    assert res.image.shape == (3, 40, 52) and res.mask is None


def test_custom_forward_is_used(model):
    calls = []

    def fwd(x):
        calls.append(tuple(x.shape))
        return model(x)

    deblur_tensor(model, torch.rand(1, 3, 64, 64), tile=32, overlap=8, forward=fwd)
    assert len(calls) > 1 and all(c[-2:] == (32, 32) for c in calls)


def test_forward_returning_constant_is_blended_exactly(model):
    # Every tile outputs 0.5 everywhere -> the blended image must be exactly 0.5 (weights normalise).
    def fwd(x):
        b, _, h, w = x.shape
        return DeblurOutput([x] * 2 + [torch.full((b, 3, h, w), 0.5)], [None, None, torch.full((b, 1, h, w), 0.3)])

    res = deblur_tensor(model, torch.rand(1, 3, 90, 70), tile=32, overlap=12, forward=fwd)
    assert torch.allclose(res.image, torch.full_like(res.image, 0.5), atol=1e-6)
    assert torch.allclose(res.mask, torch.full_like(res.mask, 0.3), atol=1e-6)


def test_bad_input(model):
    with pytest.raises(ValueError, match="B, 3, H, W"):
        deblur_tensor(model, torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="float"):
        deblur_tensor(model, torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="overlap"):
        deblur_tensor(model, torch.rand(1, 3, 64, 64), tile=16, overlap=16)


def test_auto_tile_size(model, monkeypatch):
    import lbag.infer as I

    side = auto_tile_size(model, torch.device("cpu"))
    assert side % ALIGN == 0 and 128 <= side <= 512
    assert bytes_per_pixel(lbag_small()) < bytes_per_pixel(mimo_unet())
    # Worked by hand for lbag_small (2400 bytes/px): half of 436,330,800 free bytes is 218,165,400, i.e.
    # a 301.5 px square; rounded down to 301, then to a multiple of 4 (300) or of 32 (288).
    small = lbag_small()
    assert bytes_per_pixel(small) == 2400
    monkeypatch.setattr(I, "available_memory", lambda device: 436_330_800)
    assert auto_tile_size(small, torch.device("cpu")) == 300
    assert auto_tile_size(small, torch.device("cpu"), align=32) == 288
    monkeypatch.setattr(I, "available_memory", lambda device: 10**6)  # 14 px would fit: the 128 px floor
    assert auto_tile_size(small, torch.device("cpu")) == 128
    monkeypatch.setattr(I, "available_memory", lambda device: 10**13)  # 45,643 px would fit: the caps
    assert auto_tile_size(small, torch.device("cpu")) == 512
    assert auto_tile_size(small, torch.device("cuda")) == 2048


def test_collect_inputs(tmp_path):
    from lbag.data.layout import write_image

    img = np.random.rand(8, 8, 3)
    write_image(tmp_path / "a" / "x.png", img)
    write_image(tmp_path / "a" / "sub" / "y.jpg", img)
    ds = tmp_path / "root" / "dataset" / "test" / "s01" / "00"
    write_image(ds / "00_blur.png", img)
    write_image(ds / "00_sharp.png", img)
    jobs, problems = collect_inputs([str(tmp_path / "a"), str(tmp_path / "root"), str(tmp_path / "missing"),
                                     str(tmp_path / "a" / "*.png")])
    stems = sorted(j.stem for j in jobs)
    assert stems == ["s01/00/00", "sub/y", "x"]
    assert len(problems) == 1 and "missing" in problems[0]
    # the split folder itself works too, and never picks up the sharp images
    jobs, _ = collect_inputs([str(tmp_path / "root" / "dataset" / "test")])
    assert [j.stem for j in jobs] == ["s01/00/00"] and jobs[0].source.name == "00_blur.png"
    write_image(tmp_path / "b" / "x.png", img)
    with pytest.raises(ValueError, match="same output"):
        collect_inputs([str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png")])


def test_inference_does_not_import_the_report_layer():
    # lbag.infer draws --compare pictures with lbag.panels; lbag.report (run plots, matplotlib) stays above it.
    import ast
    import inspect

    import lbag.infer

    tree = ast.parse(inspect.getsource(lbag.infer))
    imported = {(n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "panels" in imported
    assert not any(m.split(".")[-1] == "report" for m in imported), imported
