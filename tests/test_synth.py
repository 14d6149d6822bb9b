"""The physically based synthetic generator: determinism, exact masks, configured ranges, energy."""

import json

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from lbag.cli import main
from lbag.data.layout import find_pairs, read_image, read_mask
from lbag.data.synth import SynthConfig, generate, render_sample
from lbag.srgb import srgb_decode as srgb_to_linear
from lbag.srgb import srgb_encode as linear_to_srgb

SMALL = dict(size=(128, 96), blur_extent=(6.0, 14.0), blurred_area=(0.05, 0.20))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate(out, SynthConfig(**SMALL, scenes=3, images_per_sequence=3), seed=5, progress=False)
    return out


def test_layout_split_and_summary(dataset):
    train, test = find_pairs(dataset, "train"), find_pairs(dataset, "test")
    assert len(train) + len(test) == 9 and len(test) == 3  # one of three scenes (rounded 25%)
    assert not {p.scene for p in train} & {p.scene for p in test}
    p = train[0]
    assert read_image(p.sharp).shape == (96, 128, 3) and read_mask(p.mask).shape == (96, 128)
    summary = json.loads((dataset / "synth.json").read_text())
    assert len(summary["samples"]) == 9 and summary["config"]["seed"] == 5


def test_deterministic_and_resumable(dataset, tmp_path):
    cfg = SynthConfig(**SMALL, scenes=3, images_per_sequence=3)
    generate(tmp_path, cfg, seed=5, progress=False, workers=2)
    for split in ("train", "test"):
        for a, b in zip(find_pairs(dataset, split), find_pairs(tmp_path, split)):
            assert a.name == b.name
            for f in ("sharp", "blur", "mask"):
                assert getattr(a, f).read_bytes() == getattr(b, f).read_bytes(), (a.name, f)
    # Resume: delete one sample, rerun; only it is re-rendered, identically.
    victim = find_pairs(tmp_path, "train")[1]
    before = victim.blur.read_bytes()
    victim.blur.unlink()
    victim.mask.unlink()
    mtime = find_pairs(tmp_path, "train")[0].blur.stat().st_mtime_ns
    generate(tmp_path, cfg, seed=5, progress=False)
    assert victim.blur.read_bytes() == before
    assert find_pairs(tmp_path, "train")[0].blur.stat().st_mtime_ns == mtime
    # Another seed gives other images.
    other = render_sample(SynthConfig(**SMALL), np.random.default_rng(1))
    again = render_sample(SynthConfig(**SMALL), np.random.default_rng(2))
    assert not np.array_equal(other.blur, again.blur)


def test_scenes_share_background(dataset):
    pairs = [p for p in find_pairs(dataset, "train") if p.scene == find_pairs(dataset, "train")[0].scene]
    a, b = read_image(pairs[0].sharp), read_image(pairs[1].sharp)
    free = ~(read_mask(pairs[0].mask) | read_mask(pairs[1].mask))
    assert np.abs(a - b)[free].mean() < 0.02  # only noise differs off the objects


def test_mask_exact_noise_free():
    cfg = SynthConfig(**SMALL, full_well=float("inf"), read_noise=0.0)
    for s in range(4):
        r = render_sample(cfg, np.random.default_rng(s))
        diff = np.abs(r.sharp.astype(int) - r.blur.astype(int)).max(axis=2)
        # Outside the mask no layer ever reaches a pixel: the two frames are the same background.
        assert diff[~r.mask].max() == 0
        # Inside, the moving objects change the pixels.
        assert (diff[r.mask] > 2).mean() > 0.3


def test_mask_exact_with_noise():
    r = render_sample(SynthConfig(**SMALL), np.random.default_rng(7))
    d = np.abs(srgb_to_linear(r.sharp / 255) - srgb_to_linear(r.blur / 255)).mean(axis=2)
    assert d[r.mask].mean() > 4 * d[~r.mask].mean()


def test_extent_and_area_in_range():
    cfg = SynthConfig(**SMALL)
    for s in range(6):
        r = render_sample(cfg, np.random.default_rng(100 + s))
        assert all(6.0 - 0.05 <= e <= 14.0 + 0.05 for e in r.extents), r.extents
        assert 0.05 <= r.blurred_area <= 0.20 and r.blurred_area == pytest.approx(r.mask.mean())
        # Independent check: every swept pixel lies within the largest extent of the start position.
        far = distance_transform_edt(~r.start_mask)[r.mask].max()
        assert far <= max(r.extents) + 1.5
    one = SynthConfig(**SMALL, objects=(1, 1), rotation_share=0.0, scale_share=0.0)
    r = render_sample(one, np.random.default_rng(3))
    # Pure translation of one object: the farthest swept pixel is the extent away from the start.
    far = distance_transform_edt(~r.start_mask)[r.mask].max()
    assert far == pytest.approx(r.extents[0], abs=1.5)


@pytest.mark.parametrize("shape,rel", [("blob", 2e-3), ("cutout", 4e-3)])
def test_energy_conservation(shape, rel):
    # (Ragged cut-out outlines lose a little more to bilinear resampling than smooth blobs.)
    cfg = SynthConfig(**SMALL, full_well=float("inf"), read_noise=0.0, highlight_prob=0.0, scale_share=0.0,
                      object_shape=shape)
    bg = np.full((96, 128, 3), 0.3, np.float32)
    for s in range(3):
        r = render_sample(cfg, np.random.default_rng(s), background=bg, keep_linear=True)
        # Translation and rotation preserve the objects' area: the same photon energy reaches both.
        assert r.blur_linear.mean() == pytest.approx(r.sharp_linear.mean(), rel=rel)
        assert r.blur.mean() == pytest.approx(r.sharp.mean(), rel=0.02)


def test_highlights_clip_after_integration():
    # A blurred highlight brighter than white stays saturated along its smear (linear-light
    # integration), which averaging 8-bit frames could not produce.
    cfg = SynthConfig(**SMALL, full_well=float("inf"), read_noise=0.0, highlight_prob=1.0,
                      highlight_radiance=(20.0, 20.0), objects=(1, 1))
    r = render_sample(cfg, np.random.default_rng(0), background=np.full((96, 128, 3), 0.1, np.float32),
                      keep_linear=True)
    assert r.blur_linear.max() > 1.0
    assert (r.blur == 255).any() and (r.sharp == 255).any()


def test_srgb_roundtrip_and_config_errors():
    x = np.linspace(0, 1, 101, dtype=np.float32)
    assert np.allclose(srgb_to_linear(linear_to_srgb(x)), x, atol=1e-5)
    with pytest.raises(ValueError, match="blur_extent"):
        SynthConfig(blur_extent=(70, 15))
    with pytest.raises(ValueError, match="sources"):
        SynthConfig(sources=("nope",))
    with pytest.raises(ValueError, match="size"):
        SynthConfig(size=(8, 8))


def test_cli(tmp_path, capsys):
    imgs = tmp_path / "photos"
    imgs.mkdir()
    from lbag.data.layout import write_image
    write_image(imgs / "p.png", np.random.default_rng(0).random((40, 50, 3)))
    assert main(["synth", "--out", str(tmp_path / "o"), "--scenes", "2", "--size", "64x48", "--images-per-scene",
                 "2", "--blur-extent", "4,8", "--images", str(imgs), "--workers", "1"]) == 0
    assert "4 pairs" in capsys.readouterr().out
    assert main(["synth", "--out", str(tmp_path / "o"), "--size", "64by48"]) == 2


def test_sharp_at_middle_moves_only_the_sharp_frame():
    base = dict(**SMALL, full_well=float("inf"), read_noise=0.0, objects=(1, 1), rotation_share=0.0,
                scale_share=0.0, max_acceleration=0.0, highlight_prob=0.0)
    start = render_sample(SynthConfig(**base), np.random.default_rng(4))
    mid = render_sample(SynthConfig(**base, sharp_at="middle"), np.random.default_rng(4))
    assert np.array_equal(start.blur, mid.blur)
    assert (start.mask != mid.mask).mean() < 0.005  # the sharp window's sub-frames differ slightly
    # Uniform straight motion: the sharp object of 'middle' sits half the extent from the start
    # position (independent check: distance of its changed pixels from the t=0 footprint).
    changed = np.abs(mid.sharp.astype(int) - start.sharp.astype(int)).max(axis=2) > 8
    far = distance_transform_edt(~start.start_mask)[changed].max()
    assert far == pytest.approx(start.extents[0] / 2, abs=2.0)
    with pytest.raises(ValueError, match="sharp_at"):
        SynthConfig(sharp_at="end")


def test_shared_noise_leaves_untouched_pixels_identical():
    ind = render_sample(SynthConfig(**SMALL), np.random.default_rng(5))
    shr = render_sample(SynthConfig(**SMALL, noise="shared"), np.random.default_rng(5))
    static = ~shr.mask
    assert np.array_equal(ind.mask, shr.mask) and np.array_equal(ind.sharp, shr.sharp)
    # Independent draws: static pixels of the pair differ by the noise; shared: not at all.
    assert (ind.blur[static] != ind.sharp[static]).mean() > 0.3
    assert np.array_equal(shr.blur[static], shr.sharp[static])
    assert (shr.blur[shr.mask] != shr.sharp[shr.mask]).mean() > 0.3  # the moving objects still differ
    with pytest.raises(ValueError, match="noise"):
        SynthConfig(noise="same")


def test_untouched_pixels_average_to_the_background_exactly():
    # float32 sums of identical sub-frames are not always exact; pixels no layer covered must still
    # equal the background bit for bit (shared noise then leaves them identical in the pair).
    for seed in range(6):
        r = render_sample(SynthConfig(size=(256, 192), noise="shared"), np.random.default_rng(seed))
        assert np.array_equal(r.blur[~r.mask], r.sharp[~r.mask]), seed


def test_cutout_objects_follow_colour_edges_and_stay_inside():
    from lbag.data.synth import _cutout_alpha

    rng = np.random.default_rng(0)
    img = np.full((96, 96, 3), (30, 90, 200), np.uint8)   # blue surround
    yy, xx = np.mgrid[:96, :96]
    disc = (yy - 48) ** 2 + (xx - 48) ** 2 < 30 ** 2     # a red disc, 31% of the patch
    img[disc] = (220, 40, 30)
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    for seed in range(3):
        alpha = _cutout_alpha(img, np.random.default_rng(seed))
        assert alpha.shape == (96, 96) and 0 <= alpha.min() and alpha.max() <= 1
        assert alpha[0].max() == 0 and alpha[-1].max() == 0 and alpha[:, 0].max() == 0 and alpha[:, -1].max() == 0
        inside = alpha > 0.5
        # The region grows from the centre by colour: the whole disc, and little of the surround.
        assert inside[disc].mean() > 0.95 and inside[~disc].mean() < 0.25


def _photo_folder(folder, n, bad=()):
    from lbag.data.layout import write_image

    folder.mkdir()
    for i in range(n):
        write_image(folder / f"p{i}.png", np.random.default_rng(i).random((60, 80, 3)))
    for name in bad:
        (folder / name).write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def test_photos_split_by_photo_and_bad_photo_skipped(tmp_path):
    imgs = _photo_folder(tmp_path / "photos", 12, bad=("broken.png",))
    msgs = []
    summary = generate(tmp_path / "o", SynthConfig(size=(64, 48), blur_extent=(4, 8), scenes=4,
                                                   images_per_sequence=1, images_dir=str(imgs), sources=("folder",)),
                       progress=False, warn=msgs.append)
    photos = summary["photos"]
    assert photos["train"] and photos["test"] and not set(photos["train"]) & set(photos["test"])
    assert len(photos["train"]) + len(photos["test"]) == 12 and not photos["shared"]
    assert [s["path"] for s in photos["skipped"]] == [str(imgs / "broken.png")]
    assert len(msgs) == 1 and "broken.png" in msgs[0]
    assert len(summary["samples"]) == 4


def test_summary_lists_every_sample_after_an_interrupted_run(dataset, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(dataset, out)
    # A killed run: no summary written, one sample missing.
    (out / "synth.json").unlink()
    victim = find_pairs(out, "train")[0]
    victim.mask.unlink()
    summary = generate(out, SynthConfig(**SMALL, scenes=3, images_per_sequence=3), seed=5, progress=False)
    assert len(summary["samples"]) == 9
    assert json.loads((out / "synth.json").read_text()) == json.loads((dataset / "synth.json").read_text())


def test_cli_rejects_bad_workers(tmp_path):
    assert main(["synth", "--out", str(tmp_path / "o"), "--workers", "0"]) == 2


def test_cli_checks_its_output_first_and_removes_stale_temps(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["synth", "--out", str(target), "--size", "64x48", "--scenes", "2", "--workers", "1"]) == 1
    assert str(target) in capsys.readouterr().err
    out = tmp_path / "o"
    stale = out / "dataset" / "train" / ".00_blur.png.lbagtmp-999999999-abc"  # a pid that cannot be alive
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    assert main(["synth", "--out", str(out), "--size", "64x48", "--scenes", "2", "--images-per-scene", "1",
                 "--blur-extent", "4,8", "--workers", "1"]) == 0
    assert not stale.exists()


def test_light_strips_are_static_and_clipped():
    from lbag.data.synth import make_background

    plain = make_background(SynthConfig(**SMALL), np.random.default_rng(3))
    lit = make_background(SynthConfig(**SMALL, light_strips=8, highlight_radiance=(2.0, 2.0)),
                          np.random.default_rng(3))
    # Same draws up to the strips; the strips paint lamps above the white point (their centres at
    # the lamp's radiance, their one-pixel edges blended with what lies behind).
    changed = np.any(lit != plain, axis=2)
    assert changed.sum() > 40 and (lit[changed].max(axis=1) >= 1.7).sum() > 10
    # In a rendered pair the lamps are static: clipped and identical wherever no object passes.
    r = render_sample(SynthConfig(**SMALL, light_strips=8, noise="shared"), np.random.default_rng(3))
    sat = (r.sharp == 255).all(axis=2) & ~r.mask
    assert sat.sum() > 20 and np.array_equal(r.blur[sat], r.sharp[sat])
    with pytest.raises(ValueError, match="light_strips"):
        SynthConfig(light_strips=-1)
