"""Capture pipeline: time per 2152x1436 pair for every step, Menon demosaicing float32 vs float64, and the
accuracy figures on the simulated captures of the tests (96x128).

Usage: python benchmarks/bench_capture.py [--runs 3] [--height 1436 --width 2152] [--skip-accuracy]

The machine is shared with other jobs, so absolute times drift; the ratios measured in the same run
(float32 vs float64 demosaicing, each step's share of the pair) are the stable figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import markdown_table, timeit, write_result

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import capture_simulator as sim  # noqa: E402

from lbag.capture.color import alpha_field, apply_color_correction, calibrate_cameras  # noqa: E402
from lbag.capture.geometric import FLOW_METHODS, estimate_flow, warp_image  # noqa: E402
from lbag.capture.isp import IspConfig, color_process, demosaic_menon, run_isp  # noqa: E402
from lbag.capture.photometric import apply_photometric, photometric_beta  # noqa: E402
from lbag.capture.pipeline import develop_pair  # noqa: E402
from lbag.capture.rawio import read_raw, write_dng  # noqa: E402
from lbag.data.layout import write_image  # noqa: E402


def norm(dn):
    return (dn.astype(np.float32) - sim.BLACK) / (sim.WHITE - sim.BLACK)


def speed(h: int, w: int, runs: int) -> str:
    cap = sim.simulate(h, w, seed=0)
    cal = calibrate_cameras(norm(cap.lightbox_sharp), norm(cap.lightbox_blur), "RGGB", ccm=sim.TRUE_ISP.ccm)
    isp32 = IspConfig("RGGB", cal.white_balance, cal.ccm, dtype="float32")
    s_raw, b_raw = norm(cap.pair_sharp), norm(cap.pair_blur)
    tmp_dir = tempfile.TemporaryDirectory()
    tmp = Path(tmp_dir.name)
    write_dng(tmp / "s.dng", cap.pair_sharp, "RGGB", sim.BLACK, sim.WHITE)
    write_dng(tmp / "b.dng", cap.pair_blur, "RGGB", sim.BLACK, sim.WHITE)
    s_cc = apply_color_correction(s_raw, cal.sharp)
    b_cc = apply_color_correction(b_raw, cal.blur)
    beta = photometric_beta(s_cc, b_cc, "RGGB")
    b_pa = apply_photometric(b_cc, beta, "RGGB")
    wb = np.asarray(cal.white_balance, np.float32)
    from lbag.capture.rawio import channel_index_map

    gains = wb[channel_index_map(s_cc.shape, "RGGB")]
    dem = demosaic_menon(s_cc * gains, "RGGB", np.float32)
    s_rgb, b_rgb, _ = develop_pair(norm(cap.ref_sharp), norm(cap.ref_blur), cal, isp32)
    flow = estimate_flow(s_rgb, b_rgb, "farneback", "poly", 1)

    steps = [
        ("read 2 DNG (rawpy)", lambda: (read_raw(tmp / "s.dng"), read_raw(tmp / "b.dng")), True),
        ("colour correction x2 (Eq. 3)", lambda: (apply_color_correction(s_raw, cal.sharp),
                                                  apply_color_correction(b_raw, cal.blur)), True),
        ("photometric beta + apply (Eqs. 6-7)", lambda: apply_photometric(b_cc, photometric_beta(s_cc, b_cc, "RGGB"),
                                                                          "RGGB"), True),
        ("Menon demosaic x2, float64", lambda: (demosaic_menon(s_cc, "RGGB", np.float64),
                                                demosaic_menon(b_pa, "RGGB", np.float64)), False),
        ("Menon demosaic x2, float32", lambda: (demosaic_menon(s_cc, "RGGB", np.float32),
                                                demosaic_menon(b_pa, "RGGB", np.float32)), True),
        ("WB + CCM + sRGB gamma x2", lambda: (color_process(dem, isp32, False), color_process(dem, isp32, False)), True),
        ("warp blurred, cubic spline", lambda: warp_image(b_rgb, flow, order=3), True),
        ("warp blurred, quintic spline", lambda: warp_image(b_rgb, flow, order=5), False),
        ("write 2 PNG (8-bit)", lambda: (write_image(tmp / "s.png", s_rgb), write_image(tmp / "b.png", b_rgb)), True),
    ]
    per_scene = [(f"flow {m} (dense)", (lambda m=m: estimate_flow(s_rgb, b_rgb, m, "dense", 0))) for m in
                 ("dis", "farneback")]
    per_scene.append(("flow farneback poly + 1 refinement (default)",
                      lambda: estimate_flow(s_rgb, b_rgb, "farneback", "poly", 1)))
    rows, times, total = [], {}, 0.0
    for name, fn, in_pair in steps:
        t = timeit(fn, warmup=1, runs=runs)["median"]
        times[name] = t
        total += t if in_pair else 0.0
        rows.append([name, f"{t:.3f}", "yes" if in_pair else "alternative"])
    f64, f32 = times["Menon demosaic x2, float64"], times["Menon demosaic x2, float32"]
    table = markdown_table(["step (one pair)", "median s", "in default pair total"], rows)
    rows2 = []
    for name, fn in per_scene:
        t = timeit(fn, warmup=1, runs=max(1, runs - 1))["median"]
        rows2.append([name, f"{t:.3f}"])
    table2 = markdown_table(["per scene, once (reference pair)", "median s"], rows2)
    tmp_dir.cleanup()
    # Accuracy cost of float32: same frame, both paths.
    d64 = demosaic_menon(s_cc, "RGGB", np.float64)
    d32 = demosaic_menon(s_cc, "RGGB", np.float32)
    diff = float(np.abs(d64 - d32).max())
    return (f"Pair of {w}x{h} frames, median of {runs} runs after 1 warm-up, one process.\n\n{table}\n\n"
            f"Default pair total (float32, cubic warp, read + write included): **{total:.2f} s**. "
            f"Menon float64 / float32 time ratio: **{f64 / f32:.2f}x**; max |float64 - float32| "
            f"over the demosaiced frame: {diff:.2e} (linear units, 1 = white level).\n\n{table2}\n")


def accuracy() -> str:
    h, w = 96, 128
    cap = sim.simulate(h, w, seed=0)
    cal = calibrate_cameras(norm(cap.lightbox_sharp), norm(cap.lightbox_blur), "RGGB", ccm=sim.TRUE_ISP.ccm)
    rows = []
    for cam, c in (("sharp", cal.sharp), ("blur", cal.blur)):
        rel = np.abs(alpha_field(c, per_site=False) / sim.true_alpha(h, w, cam) - 1)
        rows.append([f"alpha field error, camera {cam} (max / RMS over frame)", f"{rel.max():.4%} / "
                     f"{np.sqrt(np.mean(rel ** 2)):.4%}", "< 1%"])
    s = apply_color_correction(norm(cap.pair_sharp), cal.sharp)
    b = apply_color_correction(norm(cap.pair_blur), cal.blur)
    beta = photometric_beta(s, b, "RGGB")
    rows.append(["beta error, blurred pair (max over R, G, B)", f"{np.abs(beta * sim.BRIGHTNESS - 1).max():.4%}",
                 "< 0.5%"])
    rows.append(["white balance from the light box (max rel. error)",
                 f"{np.abs(np.array(cal.white_balance) / sim.TRUE_ISP.white_balance - 1).max():.4%}", "-"])
    isp = IspConfig("RGGB", cal.white_balance, cal.ccm)
    s_rgb, b_rgb, _ = develop_pair(norm(cap.ref_sharp), norm(cap.ref_blur), cal, isp)
    m = 8
    for method in FLOW_METHODS:
        for model, ref in (("dense", 0), ("poly", 1)):
            f = estimate_flow(s_rgb, b_rgb, method, model, ref)
            e = np.linalg.norm(f - cap.flow, axis=-1)[m:-m, m:-m]
            rows.append([f"residual misalignment, {method} {model}" + (" +1 refinement" if ref else ""),
                         f"{np.sqrt(np.mean(e ** 2)):.4f} px RMS", "< 0.1 px"])
    rows.append(["misalignment before alignment", f"{np.sqrt(np.mean(np.sum(cap.flow ** 2, -1))):.3f} px RMS", "-"])
    for wb_stage in ("cfa", "rgb"):
        for dtype in ("float32", "float64"):
            cfg = IspConfig("RGGB", cal.white_balance, cal.ccm, dtype=dtype, wb_stage=wb_stage)
            out = np.round(run_isp(apply_color_correction(norm(cap.pair_sharp), cal.sharp), cfg) * 255) / 255
            p = 10 * np.log10(1 / np.mean((out - cap.sharp_truth) ** 2))
            # The target applies to the default order (WB on the CFA); the paper's order is shown for contrast.
            rows.append([f"processed sharp image PSNR vs truth (8-bit), WB on {wb_stage}, {dtype}", f"{p:.2f} dB",
                         ">= 40 dB" if wb_stage == "cfa" else "-"])
    return ("Simulated captures of the tests (96x128, 12-bit, noise 2e-4, cast up to ~26%, brightness "
            "ratio 0.91-0.96, smooth misalignment 0.2-1.1 px):\n\n"
            + markdown_table(["quantity", "measured", "target"], rows) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--height", type=int, default=1436)
    ap.add_argument("--width", type=int, default=2152)
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args()
    body = speed(args.height, args.width, args.runs)
    if not args.skip_accuracy:
        body += "\n" + accuracy()
    write_result("capture", "Capture pipeline: time per pair and accuracy", body)


if __name__ == "__main__":
    main()
