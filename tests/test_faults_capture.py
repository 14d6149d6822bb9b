"""Issue 12, `lbag capture run`: non-finite RAW data, messages naming the file, and a killed run's scene
report after the rerun (kill -9 by pid in a subprocess)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import capture_simulator as sim
from lbag.cli import main

H, W = 48, 64
N_PAIRS = 10

# Runs `lbag ARGS...` and blocks for good after the k-th finished pair (sys.argv[1]), so that the test can
# kill it by its pid at a known point.
_BLOCK_AFTER = """
import sys, time
import lbag.capture.pipeline as P
real, done, k = P._collect, [0], int(sys.argv[1])
def collect(rec, records, result):
    real(rec, records, result)
    done[0] += 1
    if done[0] == k:
        print("blocked", flush=True)
        time.sleep(600)
P._collect = collect
from lbag.cli import main
main(sys.argv[2:])
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """One scene of N_PAIRS .npy pairs and a calibration file made from light-box frames."""
    root = tmp_path_factory.mktemp("cap")
    cap = sim.simulate(H, W, seed=3)
    scene = root / "session" / "s01"
    (scene / "00").mkdir(parents=True)
    np.save(scene / "reference_sharp.npy", cap.ref_sharp)
    np.save(scene / "reference_blur.npy", cap.ref_blur)
    for i in range(N_PAIRS):
        np.save(scene / "00" / f"{i:02d}_sharp.npy", cap.pair_sharp)
        np.save(scene / "00" / f"{i:02d}_blur.npy", cap.pair_blur)
    np.save(root / "lb_sharp.npy", cap.lightbox_sharp)
    np.save(root / "lb_blur.npy", cap.lightbox_blur)
    assert main(["capture", "calibrate", "--lightbox-sharp", str(root / "lb_sharp.npy"), "--lightbox-blur",
                 str(root / "lb_blur.npy"), "--out", str(root / "calib.json"), "--black-level", str(sim.BLACK),
                 "--white-level", str(sim.WHITE)]) == 0
    return root, cap


def _run(root, out, *extra):
    return main(["capture", "run", str(root / "session"), "--calib", str(root / "calib.json"), "--out", str(out),
                 *extra])


def test_non_finite_raw_data_is_rejected_and_reports_stay_valid_json(session, tmp_path, capsys):
    root, cap = session
    sess = tmp_path / "session" / "s01"
    (sess / "00").mkdir(parents=True)
    for name in ("reference_sharp", "reference_blur"):
        np.save(sess / f"{name}.npy", np.load(root / "session" / "s01" / f"{name}.npy"))
    nan_frame = (cap.pair_sharp.astype(np.float32) - sim.BLACK) / (sim.WHITE - sim.BLACK)
    nan_frame[5, 7] = np.nan
    np.save(sess / "00" / "00_sharp.npy", nan_frame)
    np.save(sess / "00" / "00_blur.npy", cap.pair_blur)
    np.save(sess / "00" / "01_sharp.npy", cap.pair_sharp)
    np.save(sess / "00" / "01_blur.npy", cap.pair_blur)
    out = tmp_path / "out"
    rc = main(["capture", "run", str(tmp_path / "session"), "--calib", str(root / "calib.json"), "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 1 and f"{sess / '00' / '00_sharp.npy'}: 1 non-finite value(s) (NaN or infinity)" in text
    assert not (out / "dataset" / "train" / "s01" / "00" / "00_sharp.png").exists()
    report = (out / "capture_reports" / "train" / "s01.json").read_text()
    json.loads(report, parse_constant=lambda c: pytest.fail(f"report holds {c}"))
    assert set(json.loads(report)["pairs"]) == {"s01/00/01"}


def test_frame_of_another_size_than_the_calibration_names_the_file(session, tmp_path, capsys):
    root, cap = session
    sess = tmp_path / "session" / "s01"
    (sess / "00").mkdir(parents=True)
    np.save(sess / "reference_sharp.npy", cap.ref_sharp)
    np.save(sess / "reference_blur.npy", cap.ref_blur)
    np.save(sess / "00" / "00_sharp.npy", cap.pair_sharp[:-2, :-2])
    np.save(sess / "00" / "00_blur.npy", cap.pair_blur[:-2, :-2])
    rc = main(["capture", "run", str(tmp_path / "session"), "--calib", str(root / "calib.json"), "--out",
               str(tmp_path / "out")])
    text = capsys.readouterr().out
    assert rc == 1 and f"{sess / '00' / '00_sharp.npy'} / 00_blur.npy: frame is" in text


@pytest.mark.slow
def test_killed_run_then_rerun_report_describes_every_pair_on_disk(session, tmp_path, capsys):
    root, _ = session
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", _BLOCK_AFTER, "4", "capture", "run", str(root / "session"), "--calib",
           str(root / "calib.json"), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=Path(__file__).parent)
    try:
        assert "blocked" in proc.stdout.readline()  # 4 pairs finished, the 4th not yet in the report
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    done = sorted(p.name for p in (out / "dataset" / "train" / "s01" / "00").glob("*.png"))
    assert len(done) == 8
    assert _run(root, out) == 0
    assert "s01: 7 processed, 3 already done, 0 failed" in capsys.readouterr().out
    report = json.loads((out / "capture_reports" / "train" / "s01.json").read_text())
    assert sorted(report["pairs"]) == [f"s01/00/{i:02d}" for i in range(N_PAIRS)]
    assert all(len(r["beta"]) == 3 for r in report["pairs"].values())
    assert not [p for p in out.rglob(".*") if p.is_file()]
