"""NAFNet(Local): official keys/order/shapes/count at width 32 and 64, the test-time local statistics,
zero padding, any size, gradients."""


import pytest
import torch
import torch.nn.functional as F

from lbag.models.mimo_unet import DeblurOutput
from lbag.models.nafnet import INFO, MODELS, LocalAvgPool, NAFNet, nafnet

from baseline_spec import PARAMS, SHAPES


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return nafnet(width=32).eval()


def small(**kw):
    """2 levels, 8 channels; train_size 16 gives SCA windows of 24, 12 and 6 feature pixels."""
    torch.manual_seed(1)
    net = NAFNet(**{"width": 8, "enc_blk_nums": (1, 1), "dec_blk_nums": (1, 1), "train_size": 16, **kw})
    with torch.no_grad():  # beta = gamma = 0 makes a fresh block the identity: give them values
        for name, p in net.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_()
    return net.eval()


def pools(net):
    return [m.kernel for m in net.modules() if isinstance(m, LocalAvgPool)]


@pytest.mark.parametrize("width", [32, 64])
def test_state_dict_keys_order_shapes_and_count(model, width):
    net = model if width == 32 else MODELS["nafnet_width64"]()
    shapes, params = SHAPES[f"nafnet_width{width}"], PARAMS[f"nafnet_width{width}"]["params"]
    sd = net.state_dict()
    assert list(sd) == list(shapes)
    assert {k: list(v.shape) for k, v in sd.items()} == shapes
    assert sum(p.numel() for p in net.parameters()) == params == {32: 17_111_907, 64: 67_888_835}[width]
    assert INFO[f"nafnet_width{width}"]["pad_multiple"] == 16


def test_local_windows_are_one_and_a_half_training_patches_per_level(model):
    # Official NAFNetLocal: train_size 256, base_size 384, kernel = level map size * 384 // 256.
    kernels = pools(model)
    assert kernels[:4] == [(384, 384), (192, 192), (96, 96), (48, 48)]  # encoder blocks 1, 1, 1, ...
    assert set(kernels) == {(384, 384), (192, 192), (96, 96), (48, 48), (24, 24)}
    assert set(pools(nafnet(width=32, local=False))) == {None}
    with pytest.raises(ValueError, match="width 32 or 64"):
        nafnet(width=16)


def test_odd_size_and_constant_image_in_one_pass(model):
    x = torch.cat([torch.rand(1, 3, 37, 45), torch.full((1, 3, 37, 45), 0.5)])  # one full-model forward
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, DeblurOutput)
    assert [tuple(i.shape) for i in out.images] == [(2, 3, 37, 45)]
    assert out.masks == [None]
    img = out.images[0]
    assert torch.isfinite(img).all() and img[1].min() > -1.0 and img[1].max() < 2.0  # constant image


def test_fresh_blocks_are_the_identity_and_pass_gradients_to_beta_gamma():
    torch.manual_seed(2)
    net = NAFNet(width=8, enc_blk_nums=(1, 1), dec_blk_nums=(1, 1)).train()  # beta = gamma = 0
    x = torch.rand(1, 3, 9, 14)
    block = net.encoders[0][0]
    feat = torch.randn(1, 8, 6, 6)
    assert torch.equal(block(feat), feat)
    net(x).images[-1].mean().backward()
    grads = dict(net.named_parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in grads.values())
    for name in ("intro.weight", "ending.weight", "encoders.0.0.beta", "middle_blks.0.gamma"):
        assert grads[name].grad.abs().sum() > 0, name


def test_gradients_reach_every_parameter_once_blocks_are_open():
    net = small().train()
    net(torch.rand(2, 3, 19, 13)).images[-1].square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("h,w", [(5, 3), (1, 1), (33, 70)])
def test_small_topology_any_size(h, w):
    assert small()(torch.rand(2, 3, h, w)).images[0].shape == (2, 3, h, w)


def test_local_pool_is_the_sliding_mean_replicate_padded():
    x = torch.randn(2, 3, 11, 9, dtype=torch.float64)
    pool = LocalAvgPool((5, 7)).eval()
    ref = F.avg_pool2d(x, (5, 7), stride=1)  # (7, 3): 4 rows back (2 top, 2 bottom), 6 columns (3, 3)
    ref = F.pad(ref, (3, 3, 2, 2), mode="replicate")
    assert torch.allclose(pool(x), ref, atol=1e-12)
    assert torch.equal(pool.train()(x), x.mean(dim=(2, 3), keepdim=True))  # training: global
    assert torch.equal(LocalAvgPool((11, 9)).eval()(x), x.mean(dim=(2, 3), keepdim=True))  # map within window


def test_local_statistics_only_in_eval_and_only_beyond_the_window():
    net = small()
    plain_net = NAFNet(width=8, enc_blk_nums=(1, 1), dec_blk_nums=(1, 1), local=False).eval()
    plain_net.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 20, 24)  # every level within its window (24, 12, 6 at strides 1, 2, 4)
    big = torch.rand(1, 3, 40, 24)  # the full-resolution map is taller than its 24 px window
    with torch.no_grad():
        assert torch.equal(net.eval()(x).images[0], net.train()(x).images[0])
        local, train_mode = net.eval()(big).images[0], net.train()(big).images[0]
        assert not torch.allclose(local, train_mode)
        assert torch.equal(plain_net(big).images[0], train_mode)  # training = plain NAFNet


def test_zero_padding_to_a_multiple_of_16_and_global_residual():
    seen = {}
    net = NAFNet(width=8, enc_blk_nums=(1, 1, 1, 1), dec_blk_nums=(1, 1, 1, 1))  # 4 levels like GoPro's
    net.intro.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0]))
    x = torch.rand(1, 3, 17, 30)
    with torch.no_grad():
        net(x)
    assert seen["x"].shape[-2:] == (32, 32)
    assert torch.equal(seen["x"][..., :17, :30], x) and seen["x"][..., 17:, :].abs().sum() == 0
    net = small()
    with torch.no_grad():
        net.ending.weight.zero_()
        net.ending.bias.zero_()
        assert torch.equal(net(x).images[0], x)


def test_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        small()(torch.rand(1, 4, 8, 8))
