"""LBFMG masks (MOG2 background subtraction) on a tiny generated scene."""

from pathlib import Path

import numpy as np
import pytest

from lbag.cli import main
from lbag.data.layout import find_pairs, read_image, read_mask
from lbag.data.synth import SynthConfig, generate
from lbag.masks import LBFMGParams, generate_masks, lbfmg_mask, scene_training_images


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    out = tmp_path_factory.mktemp("lbfmg")
    generate(out, SynthConfig(size=(160, 112), scenes=2, images_per_sequence=6, blur_extent=(6, 20)),
             seed=1, progress=False)
    return out


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_lbfmg_beats_trivial_threshold(scene):
    pairs = find_pairs(scene, "train")
    imgs = {p: read_image(p) for q in pairs for p in (q.sharp, q.blur)}
    params = LBFMGParams()
    ours, trivial = [], []
    for p in pairs:
        others = scene_training_images(p, pairs, imgs, params)
        assert len(others) == 11  # 5 other pairs + the own sharp frame
        m = lbfmg_mask(imgs[p.blur], others, params)
        g = read_mask(p.mask)
        assert m.shape == g.shape and m.dtype == bool
        ours.append(_iou(m, g))
        # Trivial baseline: global threshold on the deviation from the scene's mean image.
        dev = np.abs(imgs[p.blur] - np.mean(others, axis=0)).max(axis=2)
        trivial.append(_iou(dev > 0.1, g))
    assert np.mean(ours) > 0.6
    assert np.mean(ours) > np.mean(trivial) + 0.05


def test_postprocessing_switches(scene):
    p = find_pairs(scene, "train")[0]
    pairs = find_pairs(scene, "train")
    imgs = {q: read_image(q) for r in pairs for q in (r.sharp, r.blur)}
    others = scene_training_images(p, pairs, imgs, LBFMGParams())
    base = lbfmg_mask(imgs[p.blur], others, LBFMGParams(dilate_radius=0))
    wider = lbfmg_mask(imgs[p.blur], others, LBFMGParams(dilate_radius=4))
    assert wider.sum() > base.sum() and (base <= wider).all()
    strict = lbfmg_mask(imgs[p.blur], others, LBFMGParams(var_threshold=400))
    assert strict.sum() < base.sum()
    none_left = lbfmg_mask(imgs[p.blur], others, LBFMGParams(min_area=0.9))
    assert not none_left.any()


def test_input_checks():
    img = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="at least one other image"):
        lbfmg_mask(img, [])
    with pytest.raises(ValueError, match="other image 0"):
        lbfmg_mask(img, [np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(ValueError, match="scale"):
        LBFMGParams(scale=0)


def test_generate_masks_layout_resume_and_bad_files(scene, tmp_path):
    out = tmp_path / "m"
    res = generate_masks(scene, out, progress=False)
    assert len(res["written"]) == 12 and not res["problems"]
    # OUT/<split>/<scene>/<seq>/<idx>.png for each dataset/<split>/<scene>/<seq>/<idx>_blur.png
    expected = {(out / p.blur.relative_to(scene / "dataset")).with_name(p.blur.name.replace("_blur", ""))
                for split in ("train", "test") for p in find_pairs(scene, split)}
    assert len(expected) == 12 and set(out.rglob("*.png")) == expected
    again = generate_masks(scene, out, progress=False)
    assert len(again["skipped"]) == 12 and not again["written"]
    # A corrupt blurred image is reported; the rest of the scene is still processed.
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(scene / "dataset", bad / "dataset")
    victim = find_pairs(bad, "train")[0]
    victim.blur.write_bytes(b"")
    res = generate_masks(bad, tmp_path / "m2", split="train", progress=False)
    assert any("0 bytes" in m for m in res["problems"])
    assert any(victim.name in m for m in res["problems"])
    assert len(res["written"]) == len(find_pairs(bad, "train")) - 1


def test_cli(scene, tmp_path, capsys):
    assert main(["masks", str(scene), "--out", str(tmp_path / "m"), "--var-threshold", "12",
                 "--no-include-own-sharp", "--split", "test"]) == 0
    assert "6 masks written" in capsys.readouterr().out
    assert main(["masks", str(scene), "--out", str(tmp_path / "m"), "--scale", "2"]) == 2
