"""Training configs (lbag.config): YAML loading, validation, overrides, and the shipped configs."""

from dataclasses import replace
from pathlib import Path

import pytest

from lbag.config import (
    ConfigError,
    TrainConfig,
    config_to_dict,
    load_config,
    parse_overrides,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHIPPED = sorted(p.stem for p in CONFIGS.glob("*.yaml"))  # every shipped config, new ones included


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_are_the_published_recipe():
    cfg = load_config()
    assert cfg.model.name == "lbag"
    assert cfg.optim.lr == 1e-4 and cfg.optim.lr_step == 100_000 and cfg.optim.lr_gamma == 0.5
    assert cfg.optim.batch_size == 12 and cfg.data.patch_size == 256
    assert cfg.data.bapc and cfg.data.bapc_prob == 0.5 and cfg.data.hflip and not cfg.data.vflip
    assert (cfg.loss.l1, cfg.loss.ssim, cfg.loss.fft, cfg.loss.mask, cfg.loss.shift) == (1.0, 1.0, 0.1, 0.1, True)
    assert cfg.train.val_every == 10_000


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert isinstance(cfg, TrainConfig)


def test_shipped_ablations_switch_what_they_say():
    # Paper Table 3: rows 2-4 are LBAG+ (MIMO-UNet+ initialisation) with one component switched off;
    # row 5 is LBAG+ with the initialisation dropped, i.e. the only one trained from scratch.
    plus = load_config(CONFIGS / "lbag_plus.yaml")
    assert plus.model.init is not None
    switched = {
        "ablation_no_gate": replace(plus, model=replace(plus.model, gated=False), loss=replace(plus.loss, mask=0.0)),
        "ablation_no_bapc": replace(plus, data=replace(plus.data, bapc=False)),
        "ablation_no_ssim": replace(plus, loss=replace(plus.loss, ssim=0.0)),
        "ablation_no_pretrain": replace(plus, model=replace(plus.model, init=None)),
    }
    for name, expected in switched.items():
        cfg = load_config(CONFIGS / f"{name}.yaml")
        assert cfg.train.out_dir == f"runs/{name}"
        assert replace(cfg, train=replace(cfg.train, out_dir=plus.train.out_dir)) == expected, name
    assert load_config(CONFIGS / "ablation_no_gate.yaml").model.init == plus.model.init
    assert load_config(CONFIGS / "mimo_unet_plus.yaml").model.name == "mimo_unet_plus"
    quick = load_config(CONFIGS / "quick.yaml")
    assert quick.model.name == "lbag_small" and quick.data.synth is not None


def test_ungated_ablation_copies_every_mimo_unet_plus_tensor(tmp_path):
    import torch

    from lbag.models import build_model, init_from_mimo_unet_plus, mimo_unet_plus

    cfg = load_config(CONFIGS / "ablation_no_gate.yaml", ["model.num_res=1", "model.width=8"])
    model = build_model(cfg.model.name, **cfg.model.topology())
    plus = tmp_path / "plus.pkl"
    torch.save({"model": mimo_unet_plus(num_res=1, width=8).state_dict()}, plus)
    assert init_from_mimo_unet_plus(model, plus) == []  # no head kept fresh: all shapes match


def test_unknown_key_names_key_and_file(tmp_path):
    p = write(tmp_path, "optim:\n  lr: 1.0e-4\n  btach_size: 4\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert "optim.btach_size" in str(exc.value) and str(p) in str(exc.value)


def test_unknown_section(tmp_path):
    p = write(tmp_path, "optimizer:\n  lr: 1.0\n")
    with pytest.raises(ConfigError, match="optimizer"):
        load_config(p)


def test_wrong_type_and_range(tmp_path):
    with pytest.raises(ConfigError, match="optim.batch_size"):
        load_config(write(tmp_path, "optim:\n  batch_size: twelve\n"))
    with pytest.raises(ConfigError, match="data.bapc_prob"):
        load_config(write(tmp_path, "data:\n  bapc_prob: 1.5\n"))
    with pytest.raises(ConfigError, match="model.name"):
        load_config(write(tmp_path, "model:\n  name: resnet\n"))
    with pytest.raises(ConfigError, match="data.bapc"):
        load_config(write(tmp_path, "data:\n  bapc: 1\n"))  # an int is not a bool


def test_int_is_accepted_for_float_and_list_for_tuple(tmp_path):
    cfg = load_config(write(tmp_path, "optim:\n  lr: 1\n  betas: [0.8, 0.9]\n"))
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.betas == (0.8, 0.9)


def test_nested_synth_section(tmp_path):
    cfg = load_config(write(tmp_path, "data:\n  synth:\n    scenes: 3\n"))
    assert cfg.data.synth.scenes == 3 and cfg.data.synth.width == 320
    with pytest.raises(ConfigError, match="data.synth.scens"):
        load_config(write(tmp_path, "data:\n  synth:\n    scens: 3\n"))


def test_overrides(tmp_path):
    p = write(tmp_path, "optim:\n  lr: 1.0e-4\n")
    cfg = load_config(p, ["optim.lr=2e-4", "data.root=/x/y", "loss.shift=false", "model.init=null"])
    assert cfg.optim.lr == 2e-4 and cfg.data.root == "/x/y" and cfg.loss.shift is False
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(p, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="section.key"):
        load_config(p, ["lr=1"])
    assert parse_overrides(["a.b.c=3"]) == {"a": {"b": {"c": 3}}}


def test_config_is_frozen_and_round_trips(tmp_path):
    import dataclasses

    import yaml

    cfg = load_config(CONFIGS / "quick.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optim.lr = 1.0
    p = write(tmp_path, yaml.safe_dump(config_to_dict(cfg)), "round.yaml")
    assert load_config(p) == cfg


def test_lbag_plus_init_needs_gated_model(tmp_path):
    with pytest.raises(ConfigError, match="model.init"):
        load_config(write(tmp_path, "model:\n  name: mimo_unet_plus\n  init: x.pkl\n"))


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "optim: [\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))
