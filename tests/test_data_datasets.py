"""TrainDataset (BAPC statistics, flips, reproducibility across workers, cache) and ValDataset."""

import os
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lbag.data import TrainDataset, ValDataset, write_image, write_mask
from lbag.data.cache import ArrayCache
from lbag.data.crops import bapc_origin


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Four 96x64 pairs whose blur is a small 12x12 square (2.3% of the frame)."""
    r = tmp_path_factory.mktemp("ds")
    rng = np.random.default_rng(0)
    for i in range(4):
        img = rng.random((64, 96, 3))
        d = r / "dataset" / "train" / "s01" / "00"
        write_image(d / f"{i:02d}_sharp.png", img)
        write_image(d / f"{i:02d}_blur.png", img[:, ::-1])
        m = np.zeros((64, 96), bool)
        m[30 + i:42 + i, 50:62] = True
        write_mask(r / "masks" / "train" / "s01" / "00" / f"{i:02d}.png", m)
    return r


def _blur_fraction(ds, epochs=30):
    hits = 0
    for e in range(epochs):
        ds.set_epoch(e)
        hits += sum(bool(ds[i]["mask"].any()) for i in range(len(ds)))
    return hits / (epochs * len(ds))


def test_shapes_and_values(root, tmp_path):
    ds = TrainDataset(root, patch_size=32, cache_dir=tmp_path)
    item = ds[0]
    assert item["blur"].shape == item["sharp"].shape == (3, 32, 32)
    assert item["mask"].shape == (1, 32, 32) and item["mask"].dtype == torch.float32
    assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    assert 0 <= item["blur"].min() and item["blur"].max() <= 1


def test_bapc_statistics(root, tmp_path):
    # With prob 1 every patch is centred on blur; without BAPC a 16 px patch rarely meets the square.
    always = _blur_fraction(TrainDataset(root, patch_size=16, bapc_prob=1.0, cache_dir=tmp_path))
    off = _blur_fraction(TrainDataset(root, patch_size=16, bapc=False, cache_dir=tmp_path))
    half = _blur_fraction(TrainDataset(root, patch_size=16, bapc_prob=0.5, cache_dir=tmp_path))
    assert always == 1.0
    # Uniform crops: P(patch meets a 12x12 square) = (12+15)^2 / ((96-15)(64-15)) ~ 0.18.
    assert 0.08 < off < 0.3
    assert 0.5 <= half < 0.75  # >= 50% guaranteed by BAPC, plus the uniform share that hits blur


def test_bapc_centre_on_blur_and_uniform_spread():
    rng = np.random.default_rng(0)
    mask = np.zeros((50, 60), bool)
    mask[20, 31] = True
    for _ in range(20):
        top, left, centred = bapc_origin(mask, 20, rng, prob=1.0)
        assert centred and (top + 10, left + 10) == (20, 31)
    # A blurred pixel too close to the border cannot be a centre: fall back to uniform.
    edge = np.zeros((50, 60), bool)
    edge[2, 2] = True
    tops = [bapc_origin(edge, 20, rng, prob=1.0) for _ in range(200)]
    assert not any(c for _, _, c in tops)
    ys = np.array([t for t, _, _ in tops])
    assert ys.min() <= 3 and ys.max() >= 27  # spread over the full range 0..30
    with pytest.raises(ValueError, match="prob"):
        bapc_origin(mask, 20, rng, prob=1.5)


def test_flips_are_paired(root, tmp_path):
    # Flip coins are always drawn, so with and without flips the crop is the same: every patch is
    # either identical or flipped, and then sharp, blurred and mask are flipped together.
    plain = TrainDataset(root, patch_size=32, bapc_prob=0.5, hflip=False, cache_dir=tmp_path)
    for kw, dim in (({"hflip": True}, 2), ({"hflip": False, "vflip": True}, 1)):
        flip = TrainDataset(root, patch_size=32, bapc_prob=0.5, cache_dir=tmp_path, **kw)
        flipped = 0
        for e in range(12):
            plain.set_epoch(e)
            flip.set_epoch(e)
            a, b = plain[1], flip[1]
            if torch.equal(a["sharp"], b["sharp"]):
                assert torch.equal(a["blur"], b["blur"]) and torch.equal(a["mask"], b["mask"])
            else:
                for k in ("sharp", "blur", "mask"):
                    assert torch.equal(a[k].flip(dim), b[k]), k
                flipped += 1
        assert 0 < flipped < 12


def test_reproducible_across_workers(root, tmp_path):
    ds = TrainDataset(root, patch_size=24, seed=3, cache_dir=tmp_path)
    ds.set_epoch(2)
    ref = torch.stack([ds[i]["blur"] for i in range(len(ds))])
    loader = DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    got = torch.cat([b["blur"] for b in loader])
    assert torch.equal(ref, got)
    ds.set_epoch(3)
    assert not torch.equal(ref, torch.stack([ds[i]["blur"] for i in range(len(ds))]))
    other = TrainDataset(root, patch_size=24, seed=4, cache_dir=tmp_path)
    other.set_epoch(2)
    assert not torch.equal(ref, torch.stack([other[i]["blur"] for i in range(len(ds))]))
    # No cache gives the same patches as the cache.
    nocache = TrainDataset(root, patch_size=24, seed=3, cache_dir=False)
    nocache.set_epoch(2)
    assert torch.equal(ref, torch.stack([nocache[i]["blur"] for i in range(len(ds))]))


def test_cache_decodes_once_and_invalidates(tmp_path):
    src = tmp_path / "img.png"
    write_image(src, np.zeros((8, 9, 3)))
    cache = ArrayCache(tmp_path / "cache")
    a = cache.load(src)
    assert a.shape == (8, 9, 3) and a.max() == 0 and isinstance(a, np.memmap)
    entries = list((tmp_path / "cache").rglob("*.npy"))
    assert len(entries) == 1
    assert ArrayCache(tmp_path / "cache").load(src) is not None
    assert list((tmp_path / "cache").rglob("*.npy")) == entries  # reused, not rewritten
    write_image(src, np.ones((8, 9, 3)))
    st = os.stat(src)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))  # a newer mtime, even on coarse clocks
    b = cache.load(src)
    assert b.max() == 255
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1  # the stale entry is gone


def test_bad_pairs_are_reported_and_skipped(root, tmp_path):
    bad = tmp_path / "bad"
    import shutil
    shutil.copytree(root, bad)
    (bad / "masks" / "train" / "s01" / "00" / "00.png").write_bytes(b"")
    (bad / "masks" / "train" / "s01" / "00" / "01.png").write_bytes(b"not a png at all")
    with pytest.warns(UserWarning, match="00.png: empty mask file"):
        ds = TrainDataset(bad, patch_size=16, cache_dir=tmp_path / "c")
    assert len(ds) == 3
    with pytest.warns(UserWarning, match="01.png: not a decodable"):
        item = ds[0]  # pair 01 is corrupt: served from the next pair instead
    assert item["blur"].shape == (3, 16, 16)
    (tmp_path / "empty" / "dataset" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no usable"):
        TrainDataset(tmp_path / "empty", cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="bapc_prob"):
        TrainDataset(root, bapc_prob=2.0, cache_dir=tmp_path)


def test_patch_larger_than_image_is_reported(root, tmp_path):
    ds = TrainDataset(root, patch_size=128, cache_dir=tmp_path)
    with pytest.warns(UserWarning, match="smaller than the 128x128 patch"), pytest.raises(Exception, match="no readable pair"):
        ds[0]


def test_val_dataset(root, tmp_path):
    ds = ValDataset(root, split="train", max_images=3)
    assert len(ds) == 3
    item = ds[1]
    assert item["name"] == "s01/00/01" and item["blur"].shape == (3, 64, 96) and item["mask"].shape == (1, 64, 96)
    assert item["has_mask"] and item["mask"].sum() == 144
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nomask = ValDataset(root, split="train", masks_root=tmp_path / "none")[0]
    assert not nomask["has_mask"] and nomask["mask"].sum() == 0
