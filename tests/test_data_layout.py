"""Layout, image I/O and `lbag data check` (ReLoBlur release defects: 0-byte mask, corrupt PNG,
missing mask)."""

import numpy as np
import pytest

from lbag.cli import main
from lbag.data.check import check_dataset
from lbag.data.layout import ImageReadError, find_pairs, read_image, read_mask, write_image, write_mask


def _make_set(root, n=3, size=(40, 32)):
    rng = np.random.default_rng(0)
    w, h = size
    for split in ("train", "test"):
        for i in range(n):
            d = root / "dataset" / split / "s01" / "00"
            write_image(d / f"{i:02d}_sharp.png", rng.random((h, w, 3)))
            write_image(d / f"{i:02d}_blur.png", rng.random((h, w, 3)))
            m = np.zeros((h, w), bool)
            m[5:15, 5:20] = True
            write_mask(root / "masks" / split / "s01" / "00" / f"{i:02d}.png", m)
    return root


def test_find_pairs_layout(tmp_path):
    _make_set(tmp_path)
    pairs = find_pairs(tmp_path, "train")
    assert [p.name for p in pairs] == ["s01/00/00", "s01/00/01", "s01/00/02"]
    p = pairs[1]
    assert (p.scene, p.seq, p.idx, p.split) == ("s01", "00", "01", "train")
    assert p.sharp.name == "01_sharp.png" and p.blur.name == "01_blur.png"
    assert p.mask == tmp_path / "masks" / "train" / "s01" / "00" / "01.png"
    other = tmp_path / "annotated"
    assert find_pairs(tmp_path, "train", masks_root=other)[0].mask == other / "train" / "s01" / "00" / "00.png"
    with pytest.raises(FileNotFoundError, match="dataset/valid"):
        find_pairs(tmp_path, "valid")


def test_image_io_roundtrip_and_formats(tmp_path):
    rng = np.random.default_rng(1)
    img = rng.random((9, 11, 3)).astype(np.float32)
    write_image(tmp_path / "a8.png", img)
    write_image(tmp_path / "a16.png", img, bits=16)
    assert np.abs(read_image(tmp_path / "a8.png") - img).max() <= 0.5 / 255 + 1e-6
    assert np.abs(read_image(tmp_path / "a16.png") - img).max() <= 0.5 / 65535 + 1e-6
    gray = (rng.random((9, 11)) * 255).astype(np.uint8)
    write_image(tmp_path / "g.png", gray)
    g = read_image(tmp_path / "g.png")
    assert g.shape == (9, 11, 3) and np.allclose(g[..., 0], gray / 255) and np.allclose(g[..., 0], g[..., 2])
    rgba = np.concatenate([img, np.full((9, 11, 1), 0.5, np.float32)], 2)
    write_image(tmp_path / "rgba.png", rgba)
    assert read_image(tmp_path / "rgba.png").shape == (9, 11, 3)
    # The channel order is RGB, not OpenCV's BGR.
    red = np.zeros((4, 4, 3), np.float32)
    red[..., 0] = 1
    write_image(tmp_path / "red.png", red)
    assert read_image(tmp_path / "red.png")[0, 0].tolist() == [1, 0, 0]
    # atomic writes leave no temp files (lbag.atomic names them .<stem>.lbagtmp-<pid>-<token><suffix>)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a16.png", "a8.png", "g.png", "red.png", "rgba.png"]


def test_read_mask_any_nonzero(tmp_path):
    m = np.zeros((6, 7), np.uint8)
    m[1, 2], m[3, 4] = 1, 255
    write_image(tmp_path / "m.png", m)
    assert read_mask(tmp_path / "m.png").sum() == 2


def test_bad_files_raise_naming_the_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.png.*0 bytes"):
        read_mask(tmp_path / "empty.png")
    write_image(tmp_path / "ok.png", np.zeros((20, 20, 3)))
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.png.*not a decodable"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(ImageReadError, match="missing.png"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="bits"):
        write_image(tmp_path / "x.png", np.zeros((2, 2, 3)), bits=12)


def _release_defects(root):
    """Reproduce the public release's defects on a clean fixture."""
    _make_set(root)
    masks = root / "masks" / "train" / "s01" / "00"
    (masks / "00.png").write_bytes(b"")                       # 0-byte mask
    (masks / "01.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # corrupt PNG
    (root / "masks" / "test" / "s01" / "00" / "02.png").unlink()  # missing mask
    (root / "dataset" / "test" / "s01" / "00" / "01_sharp.png").unlink()  # missing partner
    write_image(root / "dataset" / "test" / "s01" / "00" / "00_sharp.png", np.zeros((30, 40, 3)))  # size mismatch
    write_mask(root / "masks" / "train" / "s01" / "00" / "02.png", np.zeros((32, 40), bool))  # empty mask
    return root


def test_check_reports_release_defects(tmp_path):
    rep = check_dataset(_release_defects(tmp_path))
    text = "\n".join(rep.problems)
    assert "00.png" in text and "0 bytes" in text
    assert "01.png" in text and "not a decodable" in text
    assert "missing mask" in text and "test/s01/00/02.png" in text
    assert "missing sharp image" in text and "01_sharp.png" in text
    assert "size mismatch" in text and "00_sharp.png" in text
    assert "empty mask" in text
    train, test = rep.splits
    assert (train.pairs, train.usable, train.empty_masks) == (3, 1, 1)
    assert (test.pairs, test.usable) == (3, 0)
    assert rep.usable
    assert "UNUSABLE" not in rep.format()


def test_check_cli_exit_codes(tmp_path, capsys):
    clean = _make_set(tmp_path / "clean")
    assert main(["data", "check", str(clean)]) == 0
    assert "no problems" in capsys.readouterr().out
    bad = _release_defects(tmp_path / "bad")
    assert main(["data", "check", str(bad)]) == 0          # still usable
    assert main(["data", "check", str(bad), "--strict"]) == 1
    # Pointing at an empty mask folder makes every pair unusable.
    assert main(["data", "check", str(clean), "--masks", str(tmp_path / "nomasks")]) == 1
    assert "UNUSABLE" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "nothing")]) == 2


def test_layout_paths_and_name_pattern(tmp_path):
    from lbag.data.layout import PAIR_RE, mask_path, pair_paths, sample_path

    assert pair_paths(tmp_path, "test", "s02", "01", "07") == (
        tmp_path / "dataset/test/s02/01/07_sharp.png", tmp_path / "dataset/test/s02/01/07_blur.png")
    assert mask_path(tmp_path / "m", "train", "s01", "00", "03") == tmp_path / "m/train/s01/00/03.png"
    assert sample_path(tmp_path / "pred", "s01", "00", "03") == tmp_path / "pred/s01/00/03.png"
    # the pair pattern works on stems (any suffix: the capture session's RAW files too); the last
    # _sharp/_blur is the kind, everything before it the index
    assert PAIR_RE.match("03_sharp")["idx"] == "03"
    assert PAIR_RE.match("a_b_blur").group("idx", "kind") == ("a_b", "blur")
    assert PAIR_RE.match("x_sharp_blur").group("idx", "kind") == ("x_sharp", "blur")
    assert PAIR_RE.match("_blur") is None and PAIR_RE.match("03_sharp.png") is None
    assert PAIR_RE.match("03_mask") is None


def test_layout_detects_roots_and_split_folders(tmp_path):
    from lbag.data.layout import has_split, is_split_dir, pair_images, present_splits, published_root

    root = _make_set(tmp_path / "r", n=2)
    split = root / "dataset" / "test"
    write_image(split / "s00" / "01" / "9_blur.png", np.zeros((4, 4, 3)))  # a blurred image without partner
    (split / "s01" / "00" / "notes.png").write_bytes(b"")  # not a pair name: ignored
    assert has_split(root, "test") and not has_split(root, "valid") and not has_split(split, "test")
    assert present_splits(root) == ("train", "test")
    assert present_splits(root / "dataset") == ("train", "test")  # ROOT may be the dataset folder itself
    with pytest.raises(FileNotFoundError, match="no dataset/train or dataset/test folder"):
        present_splits(tmp_path)
    assert published_root(root, "test") == (root, "test")
    assert published_root(split, "anything") == (root, "test")  # a split folder names its split
    assert published_root(split / "s01", "test") is None
    assert is_split_dir(split) and is_split_dir(split, "blur") and not is_split_dir(root)
    assert [n for n, _ in pair_images(split, "blur")] == ["s00/01/9", "s01/00/00", "s01/00/01"]
    assert [(n, p.name) for n, p in pair_images(split, "sharp")] == [("s01/00/00", "00_sharp.png"),
                                                                    ("s01/00/01", "01_sharp.png")]
