"""lbag.models.registry and the checkpoint containers: every architecture by name, recognised from the
keys of every published container, wrong files rejected clearly, tiling per model."""

import json

import numpy as np
import pytest
import torch

from lbag.accel import prepare
from lbag.infer import DEFAULT_OVERLAP, deblur_tensor, model_tiling
from lbag.models import (
    PAPER_TABLE1,
    CheckpointError,
    architectures,
    build,
    identify,
    lbag_small,
    load_model,
    paper_row_for,
    read_weights,
    save_model,
    spec_of,
    srn_deblur,
    unavailable,
)
from lbag.models import registry
from lbag.models.checkpoints import ALIASES_KEY
from lbag.table1 import count_macs, count_params

from baseline_spec import PARAMS, SHAPES

MIMO = ("mimo_unet", "mimo_unet_plus", "lbag", "lbag_small")


def _name(spec_name):
    """Spec file names -> registry names (the DeblurGAN-v2 module drops 'fpn_')."""
    return spec_name.replace("deblurganv2_fpn_", "deblurganv2_")


def _fake(shapes):
    """A state_dict with the published keys and shapes whose every tensor is one stored zero (tiny file)."""
    return {k: torch.zeros(()).expand(v) for k, v in shapes.items()}


def _available(spec_name):
    if _name(spec_name) not in architectures():
        pytest.skip(f"{_name(spec_name)} not importable here: {unavailable()}")
    return _name(spec_name)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_every_architecture_is_listed_or_reported():
    specs = architectures()
    assert set(MIMO) | {"srn_deblur"} <= set(specs)
    broken = unavailable()
    for module in registry.BASELINE_MODULES:
        assert any(s.module == module for s in specs.values()) or module in broken
    for s in specs.values():
        assert s.pad_multiple >= 1 and s.tile_align % 4 == 0 and s.tile_align % s.pad_multiple == 0
        assert 0 < s.tile_overlap < s.min_tile and s.min_tile % s.tile_align == 0


def test_a_missing_baseline_module_does_not_break_lbag(monkeypatch):
    monkeypatch.setattr(registry, "BASELINE_MODULES", (*registry.BASELINE_MODULES, "no_such_network"))
    assert "lbag" in architectures()
    assert "no_such_network" in unavailable()
    with pytest.raises(ValueError, match="unknown architecture 'nope'.*no_such_network"):
        build("nope")


@pytest.mark.parametrize("spec_name", sorted(PARAMS))
def test_parameter_counts_match_the_official_classes(spec_name):
    name = "srn_deblur" if spec_name == "srn_deblur_color" else _available(spec_name)
    assert count_params(name) == PARAMS[spec_name]["params"]


def test_macs_on_the_meta_device():
    # SYSTEM.md: about 151 GMAC for LBAG at 256x256.
    assert count_macs("lbag", 256, 256) == pytest.approx(151e9, rel=0.01)
    # SRN at 64x64, counted by hand from the variable shapes: three scales (16, 32, 64 px), each conv's
    # kernel times its output pixels (transposed convs: times their input pixels).
    sd = srn_deblur().state_dict()
    total = 0
    for side in (16, 32, 64):
        px = {"1": side * side, "2": side * side // 4, "3": side * side // 16}
        for k, v in sd.items():
            if k.endswith(".weight"):
                stage = px["2" if k in ("dec1_4.weight",) else "3" if k == "dec2_4.weight" else k[3]]
                total += v.numel() * stage
    assert count_macs("srn_deblur", 64, 64) == total


def _containers(spec_name, sd):
    prefixed = {"module." + k: v for k, v in sd.items()}
    return {
        "deepdeblur": [{"G": sd, "D": {"body.0.weight": torch.zeros(1)}}, sd],
        "deblurganv2_fpn_inception": [{"model": prefixed}],
        "deblurganv2_fpn_mobilenet": [{"model": prefixed}, {"model": sd}],
        "hinet": [{"params": sd}, {"params": prefixed}],
        "nafnet_width32": [{"params": sd}],
        "nafnet_width64": [{"params": prefixed}, sd],
    }[spec_name]


@pytest.mark.parametrize("spec_name", sorted(SHAPES))
def test_published_containers_are_recognised(spec_name, tmp_path):
    name = _available(spec_name)
    for i, obj in enumerate(_containers(spec_name, _fake(SHAPES[spec_name]))):
        path = tmp_path / f"{spec_name}_{i}.pth"
        torch.save(obj, path)
        assert identify(path) == name
        assert list(read_weights(path).state_dict) == list(SHAPES[spec_name])  # official order kept


def test_a_mismatched_file_names_the_closest_architecture_and_the_problem(tmp_path):
    name = _available("hinet")
    sd = _fake(SHAPES["hinet"])
    first = next(iter(sd))
    sd[first] = torch.zeros(()).expand(7, 3, 3, 3)
    del sd[list(sd)[-1]]
    path = tmp_path / "HINet-GoPro.pth"
    torch.save({"params": sd}, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    msg = str(info.value)
    assert "HINet-GoPro.pth" in msg and f"closest architecture '{name}'" in msg
    assert "1 missing keys" in msg and f"{first}: file [7, 3, 3, 3]" in msg
    junk = tmp_path / "junk.pth"
    torch.save({"model": {"encoder.weight": torch.zeros(2)}}, junk)
    with pytest.raises(CheckpointError, match="junk.pth: .*match no known architecture"):
        load_model(junk)


def test_forcing_the_wrong_architecture_is_a_clear_error(tmp_path):
    path = tmp_path / "srn.pth"
    torch.save(srn_deblur().state_dict(), path)
    with pytest.raises(CheckpointError, match=r"srn.pth: weights do not fit the model: .*missing keys"):
        load_model(path, arch="lbag_small")
    with pytest.raises(CheckpointError, match="srn.pth: unknown architecture 'nope'"):
        load_model(path, arch="nope")


def test_deblurganv2_container_loads_and_saves_its_aliases_once(tmp_path):
    name = _available("deblurganv2_fpn_mobilenet")
    torch.manual_seed(0)
    model = build(name)
    sd = model.state_dict()
    official = tmp_path / "fpn_mobilenet.h5"
    torch.save({"model": {"module." + k: v for k, v in sd.items()}}, official)
    loaded = load_model(official)
    assert spec_of(loaded).name == name and not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), sd.values()))
    ours = save_model(loaded, tmp_path / "mobilenet.safetensors")
    from safetensors import safe_open

    with safe_open(str(ours), framework="pt") as f:
        meta = f.metadata()
        stored = sum(f.get_tensor(k).numel() for k in f.keys())
    aliases = json.loads(meta.get(ALIASES_KEY, "{}"))
    assert meta["lbag_arch"] == name and stored == sum(v.numel() for k, v in sd.items() if k not in aliases)
    again = load_model(ours)
    assert list(again.state_dict()) == list(sd)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), sd.values()))


def test_mimo_family_unchanged(tmp_path):
    path = tmp_path / "small.pkl"
    torch.save({"model": lbag_small().state_dict()}, path)
    assert identify(path) == "lbag_small"
    assert model_tiling(lbag_small()) == (4, DEFAULT_OVERLAP, 128, False)
    assert prepare(srn_deblur(), "cpu", "auto").name == "channels_last"


def test_tiling_honours_the_pad_multiple():
    torch.manual_seed(0)
    model = srn_deblur().eval()
    assert model_tiling(model) == (16, 128, 512, False)
    shapes = []

    def forward(t):
        shapes.append(tuple(t.shape[-2:]))
        return model(t)

    x = torch.rand(3, 40, 70)
    res = deblur_tensor(model, x, tile=36, overlap=10, forward=forward)  # rounded to 32 and 16
    assert res.tile == 32 and res.tiles == len(shapes) > 1 and res.image.shape == (3, 40, 70)
    assert all(h % 16 == 0 and w % 16 == 0 for h, w in shapes)
    whole = deblur_tensor(model, x, tile=0)  # the network pads itself, as the official code
    with torch.no_grad():
        ref = model(x[None]).images[-1][0].clamp(0, 1)
    assert whole.tiles == 1 and torch.allclose(whole.image, ref, atol=1e-6)


def test_paper_table1_rows():
    assert [r.method for r in PAPER_TABLE1] == ["DeepDeblur", "DeblurGAN-v2", "SRN-DeblurNet", "HINet", "MIMO-Unet",
                                                "LBAG", "LBAG+"]
    plus = paper_row_for("lbag_plus")
    assert plus is paper_row_for("LBAG+") and plus.metrics() == {"psnr": 34.85, "ssim": 0.9257, "psnr_w": 28.32,
                                                                  "ssim_w": 0.8734, "psnr_a": 35.53}
    assert paper_row_for("SRN-DeblurNet").psnr_w == 27.48 and paper_row_for("srn_deblur").method == "SRN-DeblurNet"
    assert paper_row_for("HINet").psnr_a == 34.95 and paper_row_for("nafnet_width32") is None
    specs = architectures()
    assert [r.method for r in specs["lbag"].paper_rows] == ["LBAG", "LBAG+"]
    assert all(c.source and c.container for s in specs.values() for c in s.checkpoints)
    assert np.isclose(paper_row_for("deepdeblur").ssim, 0.8946)
