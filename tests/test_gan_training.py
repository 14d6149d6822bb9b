"""DeblurGAN-v2 through `lbag train` (lbag.train + lbag.gan): its objective from the `gan` section, the
discriminators in every checkpoint and a bit-identical resume, the backbone file, the clear errors.

Tiny: FPN-MobileNet at 64 px patches, batch 1, small discriminators (2- and 3-layer), random VGG19."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lbag.config import ConfigError, load_config
from lbag.data.layout import write_image, write_mask
from lbag.gan import VGG19Conv33
from lbag.models import CheckpointError, load_model
from lbag.models.deblurganv2 import deblurganv2
from lbag.train import latest_checkpoint, load_training_state, train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "baseline_deblurganv2.yaml"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gan_data")
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 1)):
        for i in range(n):
            sharp = rng.random((64, 64, 3)).astype(np.float32) * 0.5 + 0.25
            blur = sharp.copy()
            blur[16:40, 16:40] = blur[16:40, 16:40].mean(axis=(0, 1))
            mask = np.zeros((64, 64), bool)
            mask[16:40, 16:40] = True
            d = root / "dataset" / split / "s01" / f"{i:02d}"
            write_image(d / "00_sharp.png", sharp)
            write_image(d / "00_blur.png", blur)
            write_mask(root / "masks" / split / "s01" / f"{i:02d}" / "00.png", mask)
    return root


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    from safetensors.torch import save_file

    torch.manual_seed(4)
    path = tmp_path_factory.mktemp("vgg") / "vgg19.safetensors"
    save_file({f"features.{k}": v.clone() for k, v in VGG19Conv33().features.state_dict().items()}, str(path))
    return path


def _cfg(data_root, out_dir, vgg, steps=4, **gan):
    return load_config(CONFIG, overrides={
        "model": {"name": "deblurganv2_mobilenet"},
        "data": {"root": str(data_root), "patch_size": 64, "num_workers": 0},
        "gan": {"vgg19_weights": str(vgg), "patch_layers": 2, "full_layers": 3, **gan},
        "optim": {"lr": 1e-3, "batch_size": 1, "max_steps": steps},
        "train": {"out_dir": str(out_dir), "val_every": 0, "ckpt_every": 2, "keep_last": 2, "log_every": 1,
                  "progress": False, "seed": 5},
    })


def _run(cfg, resume=False):
    lines = []
    return train(cfg, resume=resume, log=lines.append), lines


@pytest.mark.slow
def test_resume_continues_generator_and_discriminators_bit_identically(data_root, vgg_file, tmp_path):
    a, log_a = _run(_cfg(data_root, tmp_path / "a", vgg_file, steps=4))
    _, log_b = _run(_cfg(data_root, tmp_path / "b", vgg_file, steps=2))
    b, log_resume = _run(_cfg(data_root, tmp_path / "b", vgg_file, steps=4), resume=True)
    assert a.step == b.step == 4 and math.isfinite(a.final_loss)
    ga, gb = load_model(a.last_checkpoint).state_dict(), load_model(b.last_checkpoint).state_dict()
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    # the criterion's state went through the weights_only loader; VGG19 is not in it
    sa = load_training_state(latest_checkpoint(tmp_path / "a").state)["criterion"]
    sb = load_training_state(latest_checkpoint(tmp_path / "b").state)["criterion"]
    d_keys = [k for k in sa if k.startswith(("objective.patch_d.", "objective.full_d."))]
    assert d_keys and not any(k.startswith("objective.vgg.") for k in sa) and sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in d_keys)
    assert sa["objective.full_loss._extra_state"] == sb["objective.full_loss._extra_state"]  # RaGAN pools
    assert len(sa["objective.patch_loss._extra_state"]["fake"]) == 4  # 4 steps x batch 1
    da, db = sa["_extra_state"]["opt_d"], sb["_extra_state"]["opt_d"]  # the discriminators' Adam
    assert da["state"].keys() == db["state"].keys() and all(
        torch.equal(da["state"][i][m], db["state"][i][m]) for i in da["state"] for m in da["state"][i])
    s2 = load_training_state(tmp_path / "b" / "checkpoints" / "step_00000002.state.pt")["criterion"]
    assert any(not torch.equal(s2[k], sb[k]) for k in d_keys)  # the discriminators really trained
    logged = (tmp_path / "a" / "metrics.csv").read_text()
    assert all(f",loss/{k}," in logged for k in ("d", "content", "perceptual", "adv"))
    assert ",loss/ssim," not in logged  # the LBAG loss section is not used
    notes = [line for line in log_a + log_b + log_resume if "gan.backbone_weights not set" in line]
    assert len(notes) == 2  # once per fresh run, not again on resume


def test_resume_refuses_a_checkpoint_without_discriminator_state(data_root, vgg_file, tmp_path):
    _run(_cfg(data_root, tmp_path / "r", vgg_file, steps=2))
    ck = latest_checkpoint(tmp_path / "r")
    state = load_training_state(ck.state)
    state["criterion"] = None  # as a checkpoint of a run with another objective
    torch.save(state, ck.state)
    with pytest.raises(CheckpointError, match="no DeblurGAN-v2 discriminator state"):
        _run(_cfg(data_root, tmp_path / "r", vgg_file, steps=3), resume=True)


def test_missing_vgg_file_is_a_config_error_before_any_step(data_root, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "vgg19.pth"
    with pytest.raises(ConfigError, match=r"gan\.vgg19_weights.*no such file"):
        _run(_cfg(data_root, tmp_path / "run", missing))
    assert latest_checkpoint(tmp_path / "run") is None and not (tmp_path / "run" / "metrics.csv").exists()
    from lbag.cli import main

    assert main(["train", "-c", str(CONFIG), "--set", "model.name=deblurganv2_mobilenet",
                 "--set", f"data.root={data_root}", "--set", f"train.out_dir={tmp_path / 'cli'}"]) == 2
    assert "gan.vgg19_weights" in capsys.readouterr().err  # the shipped config leaves it null


def test_backbone_weights_come_from_the_config(data_root, vgg_file, tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(9)
    src = deblurganv2("mobilenet").backbone()
    with torch.no_grad():
        for p in src.parameters():
            p.fill_(0.125)
    path = tmp_path / "mobilenet_v2.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in src.state_dict().items()}, str(path))
    res, lines = _run(_cfg(data_root, tmp_path / "run", vgg_file, steps=1, backbone_weights=str(path)))
    assert any("backbone initialised from" in line for line in lines)
    got = dict(res.model.backbone().named_parameters())
    # one Adam step at lr 1e-3 moves a weight by at most ~1e-3
    assert all(torch.allclose(v, torch.full_like(v, 0.125), atol=2e-3) for v in got.values())
    bad = tmp_path / "bad.safetensors"
    save_file({"features.0.0.weight": torch.zeros(2)}, str(bad))
    with pytest.raises(ConfigError, match=r"gan\.backbone_weights.*mobilenet backbone"):
        _run(_cfg(data_root, tmp_path / "bad", vgg_file, backbone_weights=str(bad)))
    with pytest.raises(ConfigError, match=r"gan\.backbone_weights.*no such file"):
        _run(_cfg(data_root, tmp_path / "bad", vgg_file, backbone_weights=str(tmp_path / "none.pth")))


def test_gan_under_torchrun_is_a_clear_config_error(data_root, vgg_file, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="gan: DeblurGAN-v2 trains in a single process"):
        _run(_cfg(data_root, tmp_path / "ddp", vgg_file))
    assert not (tmp_path / "ddp").exists()
