"""`lbag capture calibrate` and `lbag capture run` end to end on a simulated session of DNG files."""

import json

import numpy as np
import pytest

import capture_simulator as sim
from lbag.capture.rawio import write_dng
from lbag.cli import main
from lbag.data.layout import read_image

H, W = 96, 128


def psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2))


def dng(path, dn):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dng(path, dn, "RGGB", black_level=sim.BLACK, white_level=sim.WHITE)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """s01 carries its own light-box frames; s02 relies on --calib and stores .npy Bayer arrays."""
    root = tmp_path_factory.mktemp("session")
    cap = sim.simulate(H, W, seed=0)
    s01 = root / "session" / "s01"
    dng(s01 / "lightbox_sharp.dng", cap.lightbox_sharp)
    dng(s01 / "lightbox_blur.dng", cap.lightbox_blur)
    dng(s01 / "reference_sharp.dng", cap.ref_sharp)
    dng(s01 / "reference_blur.dng", cap.ref_blur)
    dng(s01 / "00" / "00_sharp.dng", cap.pair_sharp)
    dng(s01 / "00" / "00_blur.dng", cap.pair_blur)
    dng(s01 / "00" / "01_sharp.dng", cap.ref_sharp)
    dng(s01 / "00" / "01_blur.dng", cap.ref_blur)
    cap2 = sim.simulate(H, W, seed=5)
    s02 = root / "session" / "s02"
    (s02 / "03").mkdir(parents=True)
    np.save(s02 / "reference_sharp.npy", cap2.ref_sharp)
    np.save(s02 / "reference_blur.npy", cap2.ref_blur)
    np.save(s02 / "03" / "00_sharp.npy", cap2.pair_sharp)
    np.save(s02 / "03" / "00_blur.npy", cap2.pair_blur)
    (s02 / "03" / "01_sharp.npy").write_bytes(b"garbage")      # a corrupt pair: reported, not fatal
    np.save(s02 / "03" / "01_blur.npy", cap2.pair_blur)
    np.save(s02 / "03" / "02_sharp.npy", cap2.pair_sharp)      # its blur frame is missing
    lab = root / "lab"
    dng(lab / "lightbox_sharp.dng", cap2.lightbox_sharp)
    dng(lab / "lightbox_blur.dng", cap2.lightbox_blur)
    return root, cap, cap2


def test_calibrate_then_run_session(session, capsys):
    root, cap, cap2 = session
    calib = root / "calib.json"
    ccm = ",".join(str(v) for row in sim.TRUE_ISP.ccm for v in row)
    rc = main(["capture", "calibrate", "--lightbox-sharp", str(root / "lab" / "lightbox_sharp.dng"),
               "--lightbox-blur", str(root / "lab" / "lightbox_blur.dng"), "--out", str(calib),
               "--ccm", ccm, "--black-level", str(sim.BLACK), "--white-level", str(sim.WHITE)])
    assert rc == 0 and calib.is_file()
    out = root / "out"
    rc = main(["capture", "run", str(root / "session"), "--calib", str(calib), "--out", str(out),
               "--workers", "2"])
    text = capsys.readouterr().out
    assert rc == 1, text  # the corrupt pair makes the run report a failure
    assert "01_sharp.npy" in text and "blur frame is missing" in text

    ds = out / "dataset" / "train"
    sharp = read_image(ds / "s01" / "00" / "00_sharp.png")
    blur = read_image(ds / "s01" / "00" / "00_blur.png")
    assert sharp.shape == (H, W, 3)
    # Processed sharp image vs the truth, after 8-bit PNG quantisation.
    assert psnr(sharp, cap.sharp_truth) >= 40.0
    # The blurred frame is warped onto camera S: it matches the blurred truth in S's geometry.
    m = 8
    assert psnr(blur[m:-m, m:-m], cap.blur_truth[m:-m, m:-m]) >= 35.0
    assert (ds / "s02" / "03" / "00_blur.png").is_file()
    assert not (ds / "s02" / "03" / "01_blur.png").exists()

    rep1 = json.loads((out / "capture_reports" / "train" / "s01.json").read_text())
    assert "light-box frames" in rep1["calibration"]["source"]
    beta = np.array(rep1["pairs"]["s01/00/00"]["beta"])
    assert np.abs(beta * sim.BRIGHTNESS - 1).max() < 0.005
    assert rep1["reference"]["flow"]["mean_magnitude"] > 0.3
    rep2 = json.loads((out / "capture_reports" / "train" / "s02.json").read_text())
    assert "session file" in rep2["calibration"]["source"]
    assert any("01_sharp.npy" in e for e in rep2["errors"])
    np.testing.assert_allclose(rep2["calibration"]["white_balance"], sim.TRUE_ISP.white_balance, rtol=0.005)

    # Resume: nothing finished is redone, files untouched, reports keep the earlier records.
    done = ds / "s01" / "00" / "00_sharp.png"
    stamp = done.stat().st_mtime_ns
    (ds / "s01" / "00" / "01_blur.png").unlink(missing_ok=True)
    rc = main(["capture", "run", str(root / "session"), "--calib", str(calib), "--out", str(out)])
    text = capsys.readouterr().out
    assert "s01: 1 processed, 1 already done, 0 failed" in text
    assert done.stat().st_mtime_ns == stamp
    from lbag.capture import pipeline
    assert pipeline._CTX == {}  # an in-process run (workers=1) leaves no scene behind in this process
    rep1 = json.loads((out / "capture_reports" / "train" / "s01.json").read_text())
    assert set(rep1["pairs"]) == {"s01/00/00", "s01/00/01"}


def test_run_errors_are_one_line(tmp_path, capsys):
    rc = main(["capture", "run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "session folder not found" in capsys.readouterr().err
    scene = tmp_path / "sess" / "s09" / "00"
    scene.mkdir(parents=True)
    np.save(scene / "00_sharp.npy", np.zeros((32, 32), np.uint16))
    np.save(scene / "00_blur.npy", np.zeros((32, 32), np.uint16))
    rc = main(["capture", "run", str(tmp_path / "sess"), "--out", str(tmp_path / "o")])
    assert rc == 1 and "no calibration" in capsys.readouterr().out
