"""MIMO-UNet / MIMO-UNet+ / LBAG: shapes, gates, gradients, parameter counts, key parity."""

import re

import pytest
import torch

from lbag.models import DeblurOutput, MIMOUNet, MIMOUNetConfig, build_model, lbag, lbag_small, mimo_unet, mimo_unet_plus


def tiny(**kw):
    """A fast model for behavioural tests."""
    return lbag(**{"num_res": 1, "width": 8, **kw})


@pytest.mark.parametrize("h,w", [(32, 32), (37, 53), (3, 5), (1, 1), (64, 18)])
def test_shapes_all_scales_any_size(h, w):
    torch.manual_seed(0)
    out = tiny().eval()(torch.rand(2, 3, h, w))
    assert isinstance(out, DeblurOutput)
    expect = [(-(-h // s), -(-w // s)) for s in (4, 2, 1)]
    assert [tuple(i.shape) for i in out.images] == [(2, 3, *e) for e in expect]
    assert [tuple(m.shape) for m in out.masks] == [(2, 1, *e) for e in expect]


def test_ungated_models_return_no_masks():
    model = MIMOUNet(num_res=1, width=8, gated=False, dropout=0.0).eval()
    out = model(torch.rand(1, 3, 16, 20))
    assert out.masks == [None, None, None]
    assert out.images[-1].shape == (1, 3, 16, 20)


def test_gate_values_within_clamp():
    torch.manual_seed(1)
    model = tiny().eval()
    # Push the gate logits strongly negative: the clamp must hold the mask at gate_min.
    with torch.no_grad():
        for conv in (model.feat_extract[5].main[0], model.ConvsOut[0].main[0], model.ConvsOut[1].main[0]):
            conv.bias[0] = -50.0
    out = model(torch.rand(1, 3, 24, 24))
    for m in out.masks:
        assert m.min() >= 0.1 - 1e-7 and m.max() <= 1.0
        assert torch.allclose(m, torch.full_like(m, 0.1))


def test_gated_output_is_residual_times_gate_plus_input():
    torch.manual_seed(2)
    model = tiny().eval()
    x = torch.rand(1, 3, 16, 16)
    feats = {}
    model.feat_extract[5].register_forward_hook(lambda mod, inp, out: feats.setdefault("head", out))
    out = model(x)
    head = feats["head"]
    gate = torch.sigmoid(head[:, :1]).clamp_min(0.1)
    assert torch.allclose(out.images[-1], head[:, 1:] * gate + x, atol=1e-6)
    assert torch.allclose(out.masks[-1], gate)


def test_gradients_reach_every_parameter():
    torch.manual_seed(3)
    model = tiny(dropout=0.0)
    out = model(torch.rand(2, 3, 16, 16))
    loss = sum(i.mean() for i in out.images) + sum(m.mean() for m in out.masks)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad
    assert sum(p.grad.abs().sum() for p in model.parameters()) > 0


@pytest.mark.parametrize("factory,count", [(lbag, 16_109_670), (mimo_unet_plus, 16_107_651),
                                           (mimo_unet, 6_807_171)])
def test_published_parameter_counts(factory, count):
    assert sum(p.numel() for p in factory().parameters()) == count


@pytest.mark.parametrize("factory,key", [(lbag, "lbag_num_res20"), (mimo_unet_plus, "mimo_unet_plus"),
                                         (mimo_unet, "mimo_unet")])
def test_state_dict_parity_with_published(factory, key, official_shapes):
    ref = official_shapes[key]
    ours = {k: list(v.shape) for k, v in factory().state_dict().items()}
    assert sorted(ours) == sorted(ref)
    assert {k: v for k, v in ours.items() if v != ref[k]} == {}


def test_small_preset_keys_follow_published_names(official_shapes):
    ref = official_shapes["lbag_num_res20"]
    ours = lbag_small().state_dict()
    assert set(ours) <= set(ref)
    # Non-block tensors differ only by width: same rank, same kernel sizes.
    for k, v in ours.items():
        assert v.dim() == len(ref[k]) and list(v.shape[2:]) == ref[k][2:], k
    num_blocks = {int(m.group(1)) for k in ours if (m := re.match(r"Encoder\.0\.layers\.(\d+)\.", k))}
    assert num_blocks == {0, 1}


def test_eval_mode_is_deterministic_and_dropout_only_in_training():
    torch.manual_seed(4)
    model = tiny(dropout=0.5)
    x = torch.rand(1, 3, 16, 16)
    model.eval()
    a, b = model(x).images[-1], model(x).images[-1]
    assert torch.equal(a, b)
    model.train()
    torch.manual_seed(5)
    c = model(x).images[-1]
    torch.manual_seed(6)
    d = model(x).images[-1]
    assert not torch.equal(c, d)


def test_bad_input_and_config():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        tiny()(torch.rand(1, 4, 8, 8))
    with pytest.raises(ValueError, match="num_res"):
        MIMOUNetConfig(num_res=0)
    with pytest.raises(ValueError, match="unknown model 'lbagg'"):
        build_model("lbagg")
    with pytest.raises(TypeError):
        MIMOUNet(MIMOUNetConfig(), num_res=3)


def test_factories_accept_topology_overrides():
    m = mimo_unet_plus(num_res=2, width=8)
    assert m.config == MIMOUNetConfig(num_res=2, width=8, gated=False, dropout=0.1)
    assert build_model("lbag_small", num_res=3).config.num_res == 3
