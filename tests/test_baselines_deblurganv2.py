"""DeblurGAN-v2 generators (lbag.models.deblurganv2) and their training objective (lbag.gan).

The official facts (state_dict keys in order, shapes, parameter counts, the aliased backbone keys) are a
subset of the project spec shipped in tests/data/baselines/deblurganv2_official.json, so these run in
any clone. Each generator is built once per module; inputs are tiny.
"""

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from lbag.config import ConfigError, GANConfig, config_to_dict, load_config
from lbag.gan import (DeblurGANv2Criterion, DeblurGANv2Loss, NLayerDiscriminator, RaGANLS, VGG19Conv33,
                      load_vgg19_features)
from lbag.models import DeblurOutput
from lbag.models.deblurganv2 import (INFO, MODELS, DeblurGANv2, InceptionResNetV2, MobileNetV2, deblurganv2,
                                     load_backbone_weights)

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "baseline_deblurganv2.yaml"
OFFICIAL = json.loads((Path(__file__).parent / "data" / "baselines" / "deblurganv2_official.json").read_text())
BACKBONES = ("mobilenet", "inception")


@pytest.fixture(scope="module", params=BACKBONES)
def net(request) -> DeblurGANv2:
    torch.manual_seed(0)
    return deblurganv2(request.param)


def _official(model: DeblurGANv2) -> dict:
    return OFFICIAL["models"][model.config.backbone]


# --- layout --------------------------------------------------------------------------------------
def test_state_dict_keys_order_and_shapes_are_official(net):
    ref = _official(net)["state_dict"]
    sd = net.state_dict()
    assert list(sd) == list(ref)
    assert {k: list(v.shape) for k, v in sd.items()} == ref


def test_parameter_and_buffer_counts(net):
    counts = _official(net)["counts"]
    assert sum(p.numel() for p in net.parameters()) == counts["params"]  # unique, aliases once
    assert sum(b.numel() for b in net.buffers()) == counts["buffers_numel"]
    sd = net.state_dict()
    assert len(sd) == counts["state_dict_entries"]
    assert sum(v.numel() for v in sd.values()) == counts["state_dict_numel_with_duplicates"]


def test_backbone_is_registered_twice_as_the_official(net):
    sd = net.state_dict(keep_vars=True)
    pairs = _official(net)["aliases"]
    assert all(sd[a] is sd[b] for a, b in pairs)
    assert sorted(sorted(g) for g in net.alias_groups()) == sorted(sorted(p) for p in pairs)


def test_aliased_keys_load_as_one_tensor():
    """A value loaded under one name is seen under the other; a file that keeps one name per shared
    tensor (as a dedup-ing saver writes) still loads with strict=True. (Generic: checked on MobileNet.)"""
    torch.manual_seed(6)
    model = deblurganv2("mobilenet")
    pairs = OFFICIAL["models"]["mobilenet"]["aliases"]
    a, b = next((a, b) for a, b in pairs if a.endswith(".weight"))
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    sd[a] = torch.full_like(sd[a], 0.25)
    sd[b] = sd[a].clone()
    model.load_state_dict(sd, strict=True)
    assert torch.equal(model.state_dict()[b], sd[a])
    deduped = {k: v + 1 for k, v in model.state_dict().items() if k not in {b for _, b in pairs}}
    model.load_state_dict(deduped, strict=True)
    assert all(torch.equal(model.state_dict()[b], deduped[a]) for a, b in pairs)


def test_backbone_modules_and_freezing(net):
    assert isinstance(net.backbone(), (InceptionResNetV2, nn.Sequential))
    model = copy.deepcopy(net).set_backbone_trainable(False)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert frozen == sum(p.numel() for p in model.backbone().parameters())
    model.set_backbone_trainable(True)
    assert all(p.requires_grad for p in model.parameters())


# --- forward -------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 3, 37, 45), (2, 3, 33, 70)])
def test_any_size_gives_same_size_output_in_range(net, shape):
    torch.manual_seed(1)
    x = torch.rand(shape)
    with torch.no_grad():
        out = net.eval()(x)
    assert isinstance(out, DeblurOutput) and len(out.images) == 1 and out.masks == [None]
    y = out.images[-1]
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1


def test_padding_follows_predict_py(net):
    net.eval()
    lo = net.min_side
    assert net.padded_size(256, 300) == (288, 320)  # (n // 32 + 1) * 32, even for a multiple of 32
    assert net.padded_size(37, 45) == (lo, lo)
    net.train()
    assert net.padded_size(256, 300) == (256, 320)  # training crops are fed as they are
    net.eval()
    assert INFO[f"deblurganv2_{net.config.backbone}"]["pad_multiple"] == 32
    assert set(MODELS) == set(INFO) == {"deblurganv2_inception", "deblurganv2_mobilenet"}


def test_inference_uses_each_images_own_statistics(net):
    """eval() == predict.py (train mode, one image at a time), independent of the batch; running
    statistics only with set_inference_stats('running')."""
    model = copy.deepcopy(net)
    torch.manual_seed(2)
    with torch.no_grad():
        for m in model.modules():
            if getattr(m, "running_mean", None) is not None:
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    side = model.min_side
    x = torch.rand(2, 3, side, side) * 2 - 1
    with torch.no_grad():
        batch = model.eval().forward_normalized(x)
        single = model.forward_normalized(x[1:])
        official = copy.deepcopy(model).train().forward_normalized(x[1:])  # predict.py: train(True)
        running = model.set_inference_stats("running").forward_normalized(x[1:])
    model.set_inference_stats("image")
    torch.testing.assert_close(batch[1:], single, atol=1e-4, rtol=0)
    torch.testing.assert_close(single, official, atol=1e-5, rtol=0)
    assert (running - single).abs().max() > 1e-2


def test_gradients_reach_every_parameter_the_official_forward_uses(net):
    model = copy.deepcopy(net).train()
    torch.manual_seed(3)
    side = model.min_side
    out = model(torch.rand(1, 3, side, side)).images[-1]
    (out - 0.5).square().mean().backward()
    used = sum(p.numel() for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0)
    assert used == _official(model)["counts"]["params_used_in_fixture_forward"]


def test_load_backbone_weights_accepts_the_imagenet_layouts():
    model = deblurganv2("mobilenet")
    src = MobileNetV2()
    load_backbone_weights(model, {**{f"module.{k}": v for k, v in src.state_dict().items()},
                                  "classifier.1.weight": torch.zeros(1000, 1280)})
    assert torch.equal(model.fpn.enc0[0][0].weight, src.features[0][0].weight)
    with pytest.raises(ValueError, match="backbone"):
        load_backbone_weights(model, {"features.0.0.weight": torch.zeros(1)})


# --- objective -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    from safetensors.torch import save_file

    torch.manual_seed(4)
    vgg = VGG19Conv33()
    path = tmp_path_factory.mktemp("vgg") / "vgg19.safetensors"
    tensors = {f"features.{k}": v.clone() for k, v in vgg.features.state_dict().items()}
    tensors["classifier.0.weight"] = torch.zeros(2, 2)  # a full torchvision file also has these
    save_file(tensors, str(path))
    return path


def test_vgg_weights_are_required_and_named_in_the_error(tmp_path, vgg_file):
    with pytest.raises(ConfigError, match="gan.vgg19_weights"):
        load_vgg19_features(None)
    with pytest.raises(ConfigError, match="gan.vgg19_weights.*no such file"):
        load_vgg19_features(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ConfigError, match="gan.vgg19_weights.*not VGG19"):
        load_vgg19_features(bad)
    with pytest.raises(ConfigError, match="gan.vgg19_weights"):
        DeblurGANv2Loss.from_config(GANConfig())
    vgg = load_vgg19_features(vgg_file)
    assert len(vgg.features) == 15 and not any(p.requires_grad for p in vgg.parameters())
    assert vgg(torch.rand(1, 3, 16, 16)).shape == (1, 256, 4, 4)  # conv3_3 at 1/4


def test_discriminators_match_the_official_patchgan_sizes():
    # pix2pix 70x70 PatchGAN with InstanceNorm (biased convs) and the 5-layer full-image one
    assert sum(p.numel() for p in NLayerDiscriminator(3).parameters()) == 2_764_737
    assert sum(p.numel() for p in NLayerDiscriminator(5).parameters()) == 11_154_369
    assert NLayerDiscriminator(5)(torch.rand(1, 3, 256, 256)).shape == (1, 1, 11, 11)


def test_ragan_ls_formulas_and_pool():
    crit = RaGANLS(pool_size=2)
    real, fake = torch.full((1, 1, 2, 2), 1.0), torch.full((1, 1, 2, 2), -1.0)
    # D: (E[(r - mean f - 1)^2] + E[(f - mean r + 1)^2]) / 2 with means from the pools
    assert crit.discriminator_loss(fake, real).item() == pytest.approx((1.0 + 1.0) / 2)
    # G swaps the targets: (E[(r - mean f + 1)^2] + E[(f - mean r - 1)^2]) / 2
    assert crit.generator_loss(fake, real).item() == pytest.approx((9.0 + 9.0) / 2)
    crit.discriminator_loss(fake + 1, real + 1)
    crit.discriminator_loss(fake + 3, real + 3)
    assert list(crit.fake_pool) == [0.0, 2.0]  # the last pool_size images only
    state = crit.state_dict()
    other = RaGANLS(pool_size=2)
    other.load_state_dict(state)
    assert list(other.real_pool) == list(crit.real_pool)


def test_objective_steps_train_generator_and_discriminators(vgg_file):
    torch.manual_seed(5)
    gen = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Sigmoid())  # any [0, 1] generator
    obj = DeblurGANv2Loss.from_config(GANConfig(vgg19_weights=str(vgg_file), patch_layers=2, full_layers=3))
    opt_g, opt_d = torch.optim.Adam(gen.parameters(), 1e-3), obj.make_discriminator_optimizer(1e-3)
    blur, sharp = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    d_before = [p.detach().clone() for p in obj.discriminator_parameters()]
    g_before = [p.detach().clone() for p in gen.parameters()]
    for _ in range(2):
        opt_g.zero_grad(set_to_none=True)
        out = gen(blur)
        loss_d = obj.discriminator_step(out, sharp, opt_d)
        assert all(p.grad is None for p in gen.parameters())  # the D step leaves G alone
        result = obj.generator_loss(out, sharp)
        opt_d.zero_grad(set_to_none=True)
        result.total.backward()
        assert all(p.grad is None for p in obj.discriminator_parameters())  # G step leaves D alone
        opt_g.step()
    assert loss_d > 0 and set(result.terms) == {"content", "perceptual", "adv"}
    expected = 0.5 * result.terms["content"] + 0.006 * result.terms["perceptual"] + 0.01 * result.terms["adv"]
    assert result.total.item() == pytest.approx(expected, rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(d_before, obj.discriminator_parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(g_before, gen.parameters()))
    assert len(obj.patch_loss.fake_pool) == 4 and len(obj.full_loss.real_pool) == 4


def test_criterion_runs_in_a_multiscale_loss_slot_and_resumes(vgg_file):
    """criterion(output, target, mask) -> LossResult with the D step inside; its state_dict resumes."""
    cfg = load_config(overrides={"gan": {"vgg19_weights": str(vgg_file), "patch_layers": 2, "full_layers": 3},
                                 "optim": {"lr": 1e-3}})
    torch.manual_seed(7)
    crit = DeblurGANv2Criterion.from_config(cfg).train()
    out = DeblurOutput([torch.rand(1, 3, 32, 32, requires_grad=True)], [None])
    sharp = torch.rand(1, 3, 32, 32)
    result = crit(out, sharp, None)
    assert set(result.terms) == {"d", "content", "perceptual", "adv", "total"} and result.n_nan == 0
    result.total.backward()
    assert out.images[0].grad is not None and crit.opt_d.state  # D stepped, G got a gradient
    with torch.no_grad():
        assert "d" not in crit(out, sharp).terms  # no D update outside training
    fresh = DeblurGANv2Criterion.from_config(cfg)
    fresh.load_state_dict(crit.state_dict())
    assert list(fresh.objective.patch_loss.fake_pool) == list(crit.objective.patch_loss.fake_pool)
    assert fresh.opt_d.state_dict()["state"].keys() == crit.opt_d.state_dict()["state"].keys()
    torch.testing.assert_close(fresh.objective.full_d.state_dict(), crit.objective.full_d.state_dict())


def test_shipped_config_carries_the_gan_section(tmp_path):
    import yaml

    assert load_config(CONFIG).gan.vgg19_weights is None  # required at training time, not at load
    cfg = load_config(CONFIG, overrides=["gan.vgg19_weights=/x/vgg19.pth"])
    assert cfg.model.name == "deblurganv2_inception" and cfg.gan.vgg19_weights == "/x/vgg19.pth"
    assert (cfg.gan.content, cfg.gan.perceptual, cfg.gan.adversarial) == (0.5, 0.006, 0.01)
    assert (cfg.gan.pool_size, cfg.gan.patch_layers, cfg.gan.full_layers) == (50, 3, 5)
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(config_to_dict(cfg)))
    assert load_config(saved) == cfg  # the gan section round-trips like the others
