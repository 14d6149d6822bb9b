"""HINet: official keys/order/shapes/count, two-stage output, any size, gradients."""


import pytest
import torch

from lbag.models.hinet import INFO, MODELS, HINet, hinet
from lbag.models.mimo_unet import DeblurOutput

from baseline_spec import PARAMS, SHAPES


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return hinet().eval()


def small(**kw):
    torch.manual_seed(1)
    return HINet(**{"wf": 8, **kw}).eval()


def test_state_dict_keys_order_shapes_and_count(model):
    shapes, params = SHAPES["hinet"], PARAMS["hinet"]["params"]
    sd = model.state_dict()
    assert list(sd) == list(shapes)
    assert {k: list(v.shape) for k, v in sd.items()} == shapes
    assert sum(p.numel() for p in model.parameters()) == params == 88_668_806
    assert MODELS == {"hinet": hinet}
    assert INFO["hinet"]["pad_multiple"] == 16 and INFO["hinet"]["receptive_field"] > 0


def test_odd_size_and_constant_image_in_one_pass(model):
    x = torch.cat([torch.rand(1, 3, 37, 45), torch.full((1, 3, 37, 45), 0.5)])  # one full-model forward
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, DeblurOutput)
    assert [tuple(i.shape) for i in out.images] == [(2, 3, 37, 45)] * 2
    assert out.masks == [None, None]
    for img in out.images:  # the constant image gives a sensible output
        assert torch.isfinite(img).all() and img[1].min() > -1.0 and img[1].max() < 2.0


@pytest.mark.parametrize("h,w", [(5, 3), (1, 1), (16, 16), (17, 50)])
def test_small_topology_any_size_in_train_and_eval(h, w):
    net = small()
    for mode in (True, False):
        out = net.train(mode)(torch.rand(2, 3, h, w))
        assert [tuple(i.shape) for i in out.images] == [(2, 3, h, w)] * 2


def test_gradients_reach_every_parameter():
    net = small().train()  # the same wiring as the full model, at a fraction of the cost
    out = net(torch.rand(1, 3, 21, 18))
    sum(img.mean() for img in out.images).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_both_stages_are_input_plus_residual():
    net = small()
    with torch.no_grad():  # zero residual heads: both outputs must be the input itself, cropped back
        for conv in (net.sam12.conv2, net.last):
            conv.weight.zero_()
            conv.bias.zero_()
        x = torch.rand(1, 3, 21, 35)
        out = net(x)
    for img in out.images:
        assert torch.equal(img, x)


def test_half_instance_norm_only_in_the_configured_levels():
    net = small()
    with_norm = [i for i, block in enumerate(net.down_path_1) if block.norm is not None]
    assert with_norm == [3, 4]
    assert net.down_path_1[3].norm.num_features == net.down_path_1[3].conv_1.out_channels // 2
    assert [i for i, b in enumerate(small(hin_position_left=0).down_path_2) if b.norm is not None] == [0, 1, 2, 3, 4]


def test_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        small()(torch.rand(3, 8, 8))
