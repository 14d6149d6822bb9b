"""Checkpoint I/O: our safetensors format, the published containers, LBAG+ init, clear errors."""


import pytest
import torch

from lbag.models import (
    CheckpointError,
    MIMOUNetConfig,
    init_from_mimo_unet_plus,
    lbag,
    lbag_small,
    load_model,
    load_state_dict,
    mimo_unet_plus,
    save_model,
)
from lbag.models.checkpoints import HEAD_PREFIXES


def small_lbag():
    torch.manual_seed(0)
    return lbag(num_res=1, width=8).eval()


def same_output(a, b, size=(20, 28)):
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        return torch.equal(a(x).images[-1], b(x).images[-1])


def test_safetensors_round_trip_keeps_weights_and_architecture(tmp_path):
    model = small_lbag()
    path = save_model(model, tmp_path / "m.safetensors", metadata={"step": 7})
    loaded = load_model(path)
    assert loaded.config == model.config
    assert not loaded.training
    assert same_output(model, loaded)
    # Only the final file is left: the temporary file was renamed into place.
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(small_lbag(), path)
    other = lbag(num_res=2, width=8)
    save_model(other, path)
    assert load_model(path).config.num_res == 2


@pytest.mark.parametrize("container", ["lbag_release", "mimo_release", "bare", "ddp_prefix"])
def test_published_containers(tmp_path, container):
    model = small_lbag()
    sd = model.state_dict()
    obj = {
        "lbag_release": {"state_dict": {"model": sd}, "global_step": 300000, "optimizer_states": []},
        "mimo_release": {"model": sd},
        "bare": sd,
        "ddp_prefix": {"model": {f"module.{k}": v for k, v in sd.items()}},
    }[container]
    path = tmp_path / "ckpt.pkl"
    torch.save(obj, path)
    loaded = load_model(path)
    assert loaded.config.num_res == 1 and loaded.config.width == 8 and loaded.config.gated
    assert same_output(model, loaded)


@pytest.mark.slow
def test_official_shapes_load_strict(tmp_path, official_shapes):
    """A file with exactly the published keys and shapes builds LBAG and loads with strict=True."""
    shapes = official_shapes["lbag_num_res20"]
    torch.manual_seed(0)
    sd = {k: torch.randn(v) * 0.01 for k, v in shapes.items()}
    path = tmp_path / "LBAG.pth"
    torch.save({"state_dict": {"model": sd}, "global_step": 1}, path)
    model = load_model(path)
    assert model.config == MIMOUNetConfig(num_res=20, width=32, gated=True, dropout=0.1)
    assert all(torch.equal(model.state_dict()[k], sd[k]) for k in sd)


def test_lbag_plus_init_skips_exactly_the_heads(tmp_path):
    torch.manual_seed(1)
    plus = mimo_unet_plus(num_res=2, width=16)
    path = tmp_path / "MIMO-UNetPlus.pkl"
    torch.save({"model": plus.state_dict()}, path)
    model = lbag_small()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    skipped = init_from_mimo_unet_plus(model, path)
    assert skipped == sorted(f"{p}main.0.{t}" for p in HEAD_PREFIXES for t in ("weight", "bias"))
    after = model.state_dict()
    for k, v in plus.state_dict().items():
        if k in skipped:
            assert torch.equal(after[k], before[k])
        else:
            assert torch.equal(after[k], v), k


def test_lbag_plus_init_rejects_other_topologies(tmp_path):
    path = tmp_path / "plus.pkl"
    torch.save({"model": mimo_unet_plus(num_res=1, width=16).state_dict()}, path)
    with pytest.raises(CheckpointError, match="plus.pkl.*missing"):
        init_from_mimo_unet_plus(lbag_small(), path)


def test_errors_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match="nothere.pth: no such file"):
        load_model(tmp_path / "nothere.pth")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pth: the file is empty"):
        load_model(empty)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="junk.pth: not a readable PyTorch checkpoint"):
        load_model(junk)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    with pytest.raises(CheckpointError, match="bad.safetensors: not a readable safetensors"):
        load_model(bad_st)
    other = tmp_path / "other.pth"
    torch.save({"model": {"foo.weight": torch.zeros(2)}}, other)
    with pytest.raises(CheckpointError, match=r"other.pth: not a checkpoint of any .*\['foo.weight'\]"):
        load_model(other)
    nodict = tmp_path / "nodict.pth"
    torch.save({"epoch": 3}, nodict)
    with pytest.raises(CheckpointError, match="nodict.pth: no model state_dict found"):
        load_model(nodict)


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path):
    path = tmp_path / "mimo.pth"
    torch.save({"model": mimo_unet_plus(num_res=1, width=8).state_dict()}, path)
    forced = MIMOUNetConfig(num_res=2, width=8, gated=True)
    with pytest.raises(CheckpointError) as info:
        load_model(path, config=forced)
    msg = str(info.value)
    assert "mimo.pth" in msg and "missing keys" in msg and "shape mismatches" in msg
    assert "feat_extract.5.main.0.weight: file (3, 8, 3, 3) vs model (4, 8, 3, 3)" in msg


def test_load_state_dict_reports_stored_config(tmp_path):
    path = save_model(small_lbag(), tmp_path / "m.safetensors")
    sd, cfg = load_state_dict(path)
    assert cfg.width == 8 and "feat_extract.0.main.0.weight" in sd
