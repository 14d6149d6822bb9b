"""Inference paths compute the same function as the float32 eager reference."""

import pytest
import torch

from lbag.accel import PATHS, auto_path, cpu_has_bf16, prepare
from lbag.models import lbag


def psnr(a, b):
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


@pytest.fixture(scope="module")
def model_and_input():
    torch.manual_seed(0)
    model = lbag(num_res=2, width=8)
    return model, torch.rand(2, 3, 29, 46)


def test_channels_last_matches_eager(model_and_input):
    model, x = model_and_input
    ref = prepare(model, "cpu", "eager")(x)
    out = prepare(model, "cpu", "channels_last")(x)
    for a, b in zip(ref.images + ref.masks, out.images + out.masks):
        assert a.shape == b.shape and b.dtype == torch.float32
        assert (a - b).abs().max() < 1e-4


@pytest.mark.skipif(not cpu_has_bf16(), reason="CPU has no native bfloat16")
def test_bf16_within_reduced_precision_target(model_and_input):
    model, x = model_and_input
    ref = prepare(model, "cpu", "eager")(x).images[-1]
    out = prepare(model, "cpu", "bf16")(x).images[-1]
    assert out.dtype == torch.float32
    assert psnr(ref.clamp(0, 1), out.clamp(0, 1)) > 50


def test_auto_and_errors(model_and_input):
    model, _ = model_and_input
    assert auto_path("cpu") in PATHS
    with pytest.raises(ValueError, match="unknown inference path 'fastest'"):
        prepare(model, "cpu", "fastest")
    if not cpu_has_bf16():
        with pytest.raises(ValueError, match="bf16"):
            prepare(model, "cpu", "bf16")
