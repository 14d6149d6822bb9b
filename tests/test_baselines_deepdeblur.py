"""DeepDeblur (MSResNet): official keys/order/shapes/count, the pyramid and range conventions, any size,
gradients."""


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lbag.models.deepdeblur import INFO, MODELS, DeepDeblur, deepdeblur, gaussian_pyramid
from lbag.models.mimo_unet import DeblurOutput

from baseline_spec import PARAMS, SHAPES


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return deepdeblur().eval()


def small(**kw):
    torch.manual_seed(1)
    return DeepDeblur(**{"n_resblocks": 1, "n_feats": 8, **kw}).eval()


def test_state_dict_keys_order_shapes_and_count(model):
    shapes, params = SHAPES["deepdeblur"], PARAMS["deepdeblur"]["params"]
    sd = model.state_dict()
    assert list(sd) == list(shapes)
    assert {k: list(v.shape) for k, v in sd.items()} == shapes
    assert sum(p.numel() for p in model.parameters()) == params == 11_721_321
    assert MODELS == {"deepdeblur": deepdeblur}
    assert INFO["deepdeblur"] == {"pad_multiple": 4, "receptive_field": 1166}


def test_odd_size_and_constant_image_in_one_pass(model):
    h, w = 13, 11  # one forward of the full model: a random and a constant (0.5) image
    x = torch.cat([torch.rand(1, 3, h, w), torch.full((1, 3, h, w), 0.5)])
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, DeblurOutput)
    assert [tuple(i.shape) for i in out.images] == [(2, 3, -(-h // s), -(-w // s)) for s in (4, 2, 1)]
    assert out.masks == [None, None, None]
    for img in out.images:  # the constant image gives a sensible output
        assert torch.isfinite(img).all() and img[1].min() > -1.0 and img[1].max() < 2.0


@pytest.mark.parametrize("h,w", [(37, 45), (5, 3), (1, 1), (64, 18)])
def test_small_topology_any_size(h, w):
    out = small()(torch.rand(2, 3, h, w))
    assert [tuple(i.shape) for i in out.images] == [(2, 3, -(-h // s), -(-w // s)) for s in (4, 2, 1)]


def test_gradients_reach_every_parameter():
    net = small(n_resblocks=2).train()  # the same wiring as the full model, at a fraction of the cost
    out = net(torch.rand(1, 3, 9, 7))
    sum(img.mean() for img in out.images).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("h,w", [(37, 45), (40, 48), (6, 5)])
def test_pyramid_matches_skimage_pyramid_gaussian(h, w):
    from skimage.transform import pyramid_gaussian

    img = (np.random.default_rng(h * w).random((h, w, 3)) * 255).astype(np.float32)
    ref = list(pyramid_gaussian(img, 2, channel_axis=-1))
    got = gaussian_pyramid(torch.from_numpy(img).permute(2, 0, 1)[None], 3)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g[0].permute(1, 2, 0).numpy(), r, atol=1e-3, rtol=0)


def test_network_sees_the_official_pyramid_in_0_255_minus_half():
    net = small()
    x = torch.rand(1, 3, 37, 45)
    seen = {}
    for s, body in enumerate(net.body_models):
        body.register_forward_pre_hook(lambda mod, args, s=s: seen.setdefault(s, args[0]))
    net(x)
    padded = F.pad(x, (0, 3, 0, 3), mode="replicate")  # edge padding to a multiple of 4
    pyramid = gaussian_pyramid(padded * 255, 3)
    assert torch.allclose(seen[2], pyramid[2] - 127.5, atol=1e-4)  # coarsest: the image alone
    assert torch.allclose(seen[1][:, :3], pyramid[1] - 127.5, atol=1e-4)
    assert torch.allclose(seen[0][:, :3], pyramid[0] - 127.5, atol=1e-4)
    assert seen[0].shape[-2:] == (40, 48)


def test_outputs_are_the_network_values_plus_half_range_over_255():
    net = small()
    with torch.no_grad():
        for body in net.body_models:  # every scale's tail conv outputs 0: the result is 127.5 / 255
            body.body[-1].weight.zero_()
            body.body[-1].bias.zero_()
        out = net(torch.rand(2, 3, 16, 12))
    for img in out.images:
        assert torch.allclose(img, torch.full_like(img, 0.5))


def test_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        small()(torch.rand(1, 1, 8, 8))
