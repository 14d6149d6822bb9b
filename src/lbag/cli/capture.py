"""``lbag capture``: plan exposures, calibrate the colour cast, and turn a beam-splitter capture session
into aligned ReLoBlur pairs. Argument parsing only; the work is in :mod:`lbag.capture`."""

from __future__ import annotations

import json

from . import UserError


def _grid(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--grid must look like ROWSxCOLS (e.g. 9x13), got {text!r}") from None
    return rows, cols


def _floats(text: str, n: int, name: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.replace(";", ",").split(","))
    except ValueError:
        raise UserError(f"{name} must be {n} comma-separated numbers, got {text!r}") from None
    if len(vals) != n:
        raise UserError(f"{name} must have {n} numbers, got {len(vals)}")
    return vals


def register(sub) -> None:
    p = sub.add_parser("capture", help="turn beam-splitter RAW captures into aligned sharp/blurred pairs")
    csub = p.add_subparsers(dest="capture_command", metavar="ACTION", required=True)

    pl = csub.add_parser("plan", help="exposure times for a desired blur (paper Eq. 2)")
    pl.add_argument("--pixel-pitch-um", type=float, required=True, help="sensor pixel pitch c, micrometres")
    pl.add_argument("--blur-px", type=float, required=True, help="desired blur n of the SHORT exposure, pixels")
    pl.add_argument("--distance-m", type=float, required=True, help="object distance d, metres")
    pl.add_argument("--image-distance-mm", type=float, required=True, help="image distance l', millimetres")
    pl.add_argument("--speed-mps", type=float, required=True, help="object speed v, metres per second")
    pl.add_argument("--nd-transmittance", type=float, required=True,
                    help="ND filter transmittance tau in (0, 1], e.g. 0.0625 for ND16")
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")
    pl.set_defaults(func=run_plan)

    ca = csub.add_parser("calibrate", help="fit the colour-cast constants of both cameras from light-box frames")
    ca.add_argument("--lightbox-sharp", required=True, help="RAW light-box frame of camera S (short exposure)")
    ca.add_argument("--lightbox-blur", required=True, help="RAW light-box frame of camera B (long exposure)")
    ca.add_argument("--out", required=True, help="calibration JSON to write")
    ca.add_argument("--pattern", default=None, help="Bayer pattern (RGGB, BGGR, GRBG, GBRG); RAW files carry "
                    "their own and it is checked; arrays default to RGGB")
    ca.add_argument("--grid", default="9x13", help="patch grid ROWSxCOLS, both odd (default 9x13)")
    ca.add_argument("--black-level", type=float, default=None, help="black level of integer Bayer arrays")
    ca.add_argument("--white-level", type=float, default=None, help="white level of integer Bayer arrays")
    ca.add_argument("--white-balance", default=None,
                    help="R,G,B gains (default: from the 6500K light box's central patch)")
    ca.add_argument("--ccm", default=None, help="camera-RGB -> sRGB matrix, 9 numbers row by row (default identity)")
    ca.set_defaults(func=run_calibrate)

    r = csub.add_parser("run", help="process a capture session into OUT/dataset/<split>/<scene>/<seq>/")
    r.add_argument("session", help="session folder: one sub-folder per scene (see the README)")
    r.add_argument("--calib", default=None, help="calibration JSON (from `lbag capture calibrate`) for scenes "
                   "without their own calibration.json or light-box frames")
    r.add_argument("--out", required=True, help="dataset root to write (OUT/dataset/<split>/...)")
    r.add_argument("--split", default="train", help="split folder for these scenes (default train)")
    r.add_argument("--flow", default="farneback", choices=("dis", "farneback", "deepflow", "tvl1"),
                   help="optical-flow backend for the reference pair (default farneback)")
    r.add_argument("--flow-model", default="poly", choices=("dense", "poly"),
                   help="dense per-pixel flow, or a robust smooth polynomial fit (default poly)")
    r.add_argument("--warp-order", type=int, default=3, choices=(1, 3, 5), help="spline order of the warp")
    r.add_argument("--bits", type=int, default=8, choices=(8, 16), help="PNG bit depth (default 8, as ReLoBlur)")
    r.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="ISP precision")
    r.add_argument("--wb-stage", default="cfa", choices=("cfa", "rgb"),
                   help="white balance before demosaicing (cfa, default) or after (rgb, the paper's order)")
    r.add_argument("--grid", default="9x13", help="patch grid for light-box frames found in scene folders")
    r.add_argument("--workers", type=int, default=1, help="processes over pairs (default 1)")
    r.add_argument("--overwrite", action="store_true", help="redo pairs whose outputs already exist")
    r.set_defaults(func=run_run)


def run_plan(args) -> int:
    from ..capture.exposure import plan_exposure

    try:
        plan = plan_exposure(args.pixel_pitch_um, args.blur_px, args.distance_m, args.image_distance_mm,
                             args.speed_mps, args.nd_transmittance)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
        return 0
    print(f"short exposure t_S = {plan.t_short_s * 1e3:.4g} ms  ({plan.short_blur_px:g} px of motion)")
    print(f"long exposure  t_L = {plan.t_long_s * 1e3:.4g} ms  ({plan.long_blur_px:.1f} px of motion, tau = {plan.tau:g})")
    print(f"object speed on the sensor: {plan.image_speed_px_s:.1f} px/s")
    for w in plan.warnings:
        print(f"warning: {w}")
    return 0


def run_calibrate(args) -> int:
    import numpy as np

    from ..atomic import check_output_file
    from ..capture.color import calibrate_cameras, save_calibration
    from ..capture.rawio import RawFormatError, read_raw

    grid = _grid(args.grid)
    wb = _floats(args.white_balance, 3, "--white-balance") if args.white_balance else None
    ccm = np.reshape(_floats(args.ccm, 9, "--ccm"), (3, 3)) if args.ccm else None
    check_output_file(args.out)  # before the fit: a folder in the way, no permission, read-only
    try:
        fs = read_raw(args.lightbox_sharp, args.pattern, args.black_level, args.white_level)
        fb = read_raw(args.lightbox_blur, args.pattern, args.black_level, args.white_level)
        if fs.pattern != fb.pattern or fs.cfa.shape != fb.cfa.shape:
            raise UserError(f"{args.lightbox_blur}: pattern/size {fb.pattern} {fb.cfa.shape} differ from "
                            f"{args.lightbox_sharp}'s {fs.pattern} {fs.cfa.shape}")
        calib = calibrate_cameras(fs.cfa, fb.cfa, fs.pattern, grid=grid, white_balance=wb, ccm=ccm,
                                  black_level=args.black_level, white_level=args.white_level,
                                  source=f"{args.lightbox_sharp}, {args.lightbox_blur}")
    except (RawFormatError, ValueError) as exc:
        raise UserError(str(exc)) from None
    save_calibration(calib, args.out)
    print(f"wrote {args.out}: pattern {calib.pattern}, {grid[0]}x{grid[1]} patches, white balance "
          f"{', '.join(f'{v:.4f}' for v in calib.white_balance)}")
    for name, c in (("sharp", calib.sharp), ("blur", calib.blur)):
        print(f"  camera {name}: fit RMS of alpha (R, G, B) = {', '.join(f'{v:.4f}' for v in c.fit_rms)}")
    return 0


def run_run(args) -> int:
    from ..capture.color import load_calibration
    from ..capture.pipeline import CaptureError, CaptureOptions, process_session

    try:
        calib = load_calibration(args.calib) if args.calib else None
        options = CaptureOptions(split=args.split, flow_method=args.flow, flow_model=args.flow_model,
                                 warp_order=args.warp_order, bits=args.bits, dtype=args.dtype,
                                 wb_stage=args.wb_stage, grid=_grid(args.grid), workers=args.workers,
                                 overwrite=args.overwrite)
        results = process_session(args.session, args.out, calib, options)
    except (CaptureError, ValueError) as exc:
        raise UserError(str(exc)) from None
    failed = 0
    for r in results:
        print(f"{r.scene}: {r.done} processed, {r.skipped} already done, {r.failed} failed"
              + (f"; report {r.report}" if r.report else ""))
        for e in r.errors:
            print(f"  problem: {e}")
        failed += r.failed
    return 1 if failed else 0
