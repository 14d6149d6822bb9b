"""``lbag deblur`` end to end on tiny images: formats, bit depth, EXIF, folders, datasets, bad files."""

import cv2
import numpy as np
import pytest
from PIL import Image

from lbag.cli import main
from lbag.data.layout import write_image



def _img(h=40, w=56, seed=0):
    return np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)


def _raw(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def run(*args):
    return main(["deblur", "--quiet", *map(str, args)])


def test_png_8_and_16_bit_with_mask_and_compare(tmp_path, weights):
    write_image(tmp_path / "in" / "a.png", _img(), bits=8)
    write_image(tmp_path / "in" / "b.png", _img(seed=1), bits=16)
    out = tmp_path / "out"
    assert run(tmp_path / "in", "-o", out, "--weights", weights, "--save-mask", "--compare", "--tile", "32",
               "--overlap", "8") == 0
    a, b = _raw(out / "a.png"), _raw(out / "b.png")
    assert a.dtype == np.uint8 and a.shape == (40, 56, 3)
    assert b.dtype == np.uint16 and b.shape == (40, 56, 3)
    m = _raw(out / "a_mask.png")
    assert m.shape[:2] == (40, 56) and m.min() >= 25  # the gate is clamped to >= 0.1 (25.5/255)
    c = _raw(out / "a_compare.png")
    assert c.shape[0] == 40 and c.shape[1] > 3 * 56
    assert not [p for p in out.rglob(".*")]  # atomic writes leave no temp files


def test_grayscale_rgba_and_exif(tmp_path, weights):
    g = (np.random.default_rng(2).random((30, 44)) * 255).astype(np.uint8)
    Image.fromarray(g).save(tmp_path / "gray.png")
    rgba = (np.random.default_rng(3).random((30, 44, 4)) * 255).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    rgb = (np.random.default_rng(4).random((30, 44, 3)) * 255).astype(np.uint8)
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # stored landscape, displayed rotated 90 degrees clockwise: upright is 44x30
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = tmp_path / "out"
    assert run(tmp_path / "gray.png", tmp_path / "rgba.png", tmp_path / "rot.jpg", "-o", out,
               "--weights", weights) == 0
    assert _raw(out / "gray.png").shape == (30, 44, 3)
    assert _raw(out / "rgba.png").shape == (30, 44, 3)
    assert _raw(out / "rot.png").shape == (44, 30, 3)


def test_bad_file_is_reported_and_skipped(tmp_path, weights, capsys):
    write_image(tmp_path / "in" / "good.png", _img())
    (tmp_path / "in" / "empty.png").write_bytes(b"")
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "out"
    assert run(tmp_path / "in", "-o", out, "--weights", weights) == 1
    text = capsys.readouterr().out
    assert "empty.png" in text and "broken.png" in text and "wrote 1 image" in text
    assert (out / "good.png").is_file() and not (out / "empty.png").exists()


def test_dataset_root_writes_evaluate_layout(tmp_path, weights):
    for seq in ("00", "01"):
        d = tmp_path / "root" / "dataset" / "test" / "s03" / seq
        write_image(d / "05_blur.png", _img())
        write_image(d / "05_sharp.png", _img(seed=9))
    out = tmp_path / "out"
    assert run(tmp_path / "root", "-o", out, "--weights", weights) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["s03/00/05.png", "s03/01/05.png"]


def test_glob_input(tmp_path, weights):
    write_image(tmp_path / "x1.png", _img())
    write_image(tmp_path / "x2.png", _img(seed=5))
    write_image(tmp_path / "y.png", _img(seed=6))
    out = tmp_path / "out"
    assert run(str(tmp_path / "x*.png"), "-o", out, "--weights", weights) == 0
    assert sorted(p.name for p in out.iterdir()) == ["x1.png", "x2.png"]


def test_user_errors(tmp_path, weights, capsys):
    write_image(tmp_path / "a.png", _img())
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nonsense")
    assert run(tmp_path / "a.png", "-o", tmp_path / "o", "--weights", bad) == 2
    assert "bad.safetensors" in capsys.readouterr().err
    assert run(tmp_path / "nothing_here", "-o", tmp_path / "o", "--weights", weights) == 2
    assert run(tmp_path / "a.png", "-o", tmp_path / "o", "--weights", weights, "--tile", "16", "--overlap", "16") == 2
    assert run(tmp_path / "a.png", "-o", tmp_path / "o", "--weights", weights, "--device", "tpu") == 2
    assert "--device: " in capsys.readouterr().err
    # Valid as typed, but after rounding to multiples of 4 the overlap (16) no longer fits the tile (16).
    assert run(tmp_path / "a.png", "-o", tmp_path / "o", "--weights", weights, "--tile", "18", "--overlap", "13") == 2
    assert "must be smaller than the tile (16)" in capsys.readouterr().err


def test_tiled_equals_untiled_output_files(tmp_path, weights):
    write_image(tmp_path / "a.png", _img(64, 80), bits=16)
    assert run(tmp_path / "a.png", "-o", tmp_path / "t", "--weights", weights, "--tile", "48", "--overlap", "24") == 0
    assert run(tmp_path / "a.png", "-o", tmp_path / "u", "--weights", weights, "--tile", "0") == 0
    t = _raw(tmp_path / "t" / "a.png").astype(np.float64) / 65535
    u = _raw(tmp_path / "u" / "a.png").astype(np.float64) / 65535
    assert 10 * np.log10(1 / max(((t - u) ** 2).mean(), 1e-20)) > 45


def test_bundled_model_is_default_and_leaves_static_pixels_alone(tmp_path, capsys):
    from lbag.data.layout import read_image
    from lbag.infer import bundled_weights_path, load_for_inference

    path = bundled_weights_path()
    assert path.is_file() and path.parent.name == "weights" and path.parent.parent.name == "lbag"
    model = load_for_inference()
    assert model.config.gated and model.config.width == 16
    # A flat, textured static image with no motion: the output must stay close to the input.
    rng = np.random.default_rng(0)
    img = np.clip(0.5 + 0.1 * rng.standard_normal((48, 64, 3)), 0, 1).astype(np.float32)
    write_image(tmp_path / "static.png", img)
    assert run(tmp_path / "static.png", "-o", tmp_path / "o") == 0
    text = capsys.readouterr().out
    # An honest default: which model ran, that it is a demonstration model, how to run the published one.
    assert "model: MIMOUNet (LBAG, gated" in text and "bundled weights" in text
    assert "DEMONSTRATION model" in text and "--weights with the authors' LBAG checkpoint" in text
    out = read_image(tmp_path / "o" / "static.png")
    src = read_image(tmp_path / "static.png")
    assert 10 * np.log10(1 / ((out - src) ** 2).mean()) > 30


def test_demo_writes_pictures_and_metrics(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--size", "160x128", "--seed", "3"]) == 0
    for name in ("blurred", "deblurred", "sharp", "predicted_mask", "true_mask", "comparison"):
        assert (out / f"{name}.png").is_file(), name
    text = capsys.readouterr().out
    assert "| deblurred" in text and "PSNR_w" in text
    # The printed PSNR / PSNR_w, recomputed from the 8-bit PNGs it wrote, with plain numpy.
    u8 = {n: cv2.imread(str(out / f"{n}.png"), cv2.IMREAD_UNCHANGED) for n in ("blurred", "deblurred", "sharp")}
    assert all(a.dtype == np.uint8 and a.shape == (128, 160, 3) for a in u8.values())
    m = cv2.imread(str(out / "true_mask.png"), cv2.IMREAD_UNCHANGED) > 0
    assert 0 < m.mean() < 1
    rows = {r.split("|")[1].strip(): [float(v) for v in r.split("|")[2:-1]]
            for r in text.splitlines() if r.startswith("| blurred input") or r.startswith("| deblurred")}
    for name, file in (("blurred input", "blurred"), ("deblurred", "deblurred")):
        se = ((u8[file].astype(np.float64) - u8["sharp"]) / 255) ** 2
        psnr, psnr_w = 10 * np.log10(1 / se.mean()), 10 * np.log10(1 / se[m].mean())
        assert abs(rows[name][0] - psnr) <= 0.0051 and abs(rows[name][2] - psnr_w) <= 0.0051, name
    assert rows["deblurred"][2] > rows["blurred input"][2]  # the model does deblur the blurred region
    assert main(["demo", "-o", str(out), "--size", "32x32"]) == 2
    assert main(["demo", "-o", str(out), "--size", "160by128"]) == 2


def test_inference_path_is_reported_and_matches_the_reference(tmp_path, weights, capsys):
    from lbag.accel import auto_path

    write_image(tmp_path / "a.png", _img(48, 64), bits=16)
    assert run(tmp_path / "a.png", "-o", tmp_path / "auto", "--weights", weights) == 0
    text = capsys.readouterr().out
    assert f"inference path {auto_path('cpu')} on cpu (chosen automatically" in text
    assert f"from {weights}" in text and "DEMONSTRATION" not in text
    assert run(tmp_path / "a.png", "-o", tmp_path / "ref", "--weights", weights, "--path", "eager") == 0
    assert "inference path eager on cpu\n" in capsys.readouterr().out
    fast = _raw(tmp_path / "auto" / "a.png").astype(np.float64) / 65535
    ref = _raw(tmp_path / "ref" / "a.png").astype(np.float64) / 65535
    assert 10 * np.log10(1 / max(((fast - ref) ** 2).mean(), 1e-20)) > 50
    assert run(tmp_path / "a.png", "-o", tmp_path / "x", "--weights", weights, "--path", "fastest") == 2
    assert "unknown inference path 'fastest'" in capsys.readouterr().err
