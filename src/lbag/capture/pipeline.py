"""The ReLoBlur post-processing chain over a capture session (*Real-World Deep Local Motion Deblurring*,
Li et al., AAAI 2023, "Paired Image Post-processing"): colour correction -> photometric alignment -> ISP
-> geometric alignment, from beam-splitter RAW captures to the published dataset layout.

Session folder (one sub-folder per scene; see the README for a worked example)::

    SESSION/<scene>/reference_sharp.<ext>   static reference pair (required): nothing moves
    SESSION/<scene>/reference_blur.<ext>
    SESSION/<scene>/calibration.json        optional: this scene's calibration file
    SESSION/<scene>/lightbox_sharp.<ext>    optional: light-box frames, fitted on the fly
    SESSION/<scene>/lightbox_blur.<ext>
    SESSION/<scene>/<seq>/<idx>_sharp.<ext> the captured pairs
    SESSION/<scene>/<seq>/<idx>_blur.<ext>

``<ext>`` is any RAW suffix rawpy reads (.dng, .cr2, .nef, ...) or a Bayer array (.npy, .tif). A
scene's calibration is, in order of preference: its ``calibration.json``, its light-box frames (colour
constants and white balance fitted from them, colour matrix from ``--calib`` if given), the session-wide
``--calib`` file.

Output: ``OUT/dataset/<split>/<scene>/<seq>/<idx>_{sharp,blur}.png`` and one JSON report per scene in
``OUT/capture_reports/<split>/<scene>.json`` (calibration used, the reference pair's beta and flow
statistics, every pair's beta). Finished pairs (both PNGs present) are not redone unless ``overwrite``.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import check_output_dir, remove_stale_temps, write_json
from ..data.layout import PAIR_RE, pair_paths
from .color import CaptureCalibration, apply_color_correction, calibrate_cameras, load_calibration
from .geometric import FLOW_METHODS, FLOW_MODELS, FlowStats, estimate_flow, warp_image
from .isp import IspConfig, run_isp
from .photometric import apply_photometric, photometric_beta
from .rawio import ARRAY_SUFFIXES, RAW_SUFFIXES, RawFormatError, RawFrame, read_raw

_SUFFIXES = RAW_SUFFIXES + ARRAY_SUFFIXES
REPORTS = "capture_reports"


class CaptureError(ValueError):
    """A session, scene or file that cannot be processed; the message names it and the problem."""


@dataclass(frozen=True)
class CaptureOptions:
    """Settings of :func:`process_session`.

    Attributes:
        split: output split folder (``train`` or ``test``; ReLoBlur keeps every scene in one split).
        flow_method: optical-flow backend (``dis``, ``farneback``, ``deepflow``, ``tvl1``).
        flow_model: ``dense`` per-pixel flow or ``poly`` robust smooth fit (see ``geometric``).
        flow_refinements: extra warp-and-re-estimate rounds of the flow.
        warp_order: spline order of the warp (3 cubic, 5 quintic).
        bits: 8 (ReLoBlur) or 16-bit PNG output.
        dtype: ``float32`` or ``float64`` ISP precision.
        wb_stage: ``cfa`` (before demosaicing) or ``rgb`` (after, the paper's literal order).
        grid: patch grid when fitting light-box frames found in a scene.
        workers: processes over pairs (1 = in this process).
        overwrite: redo pairs whose outputs exist.
        progress: show a tqdm bar.
    """

    split: str = "train"
    flow_method: str = "farneback"
    flow_model: str = "poly"
    flow_refinements: int = 1
    warp_order: int = 3
    bits: int = 8
    dtype: str = "float32"
    wb_stage: str = "cfa"
    grid: tuple[int, int] = (9, 13)
    workers: int = 1
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self):
        if not self.split or "/" in self.split or self.split.startswith("."):
            raise ValueError(f"split must be a plain folder name such as 'train' or 'test', got {self.split!r}")
        if self.flow_method not in FLOW_METHODS:
            raise ValueError(f"flow_method must be one of {', '.join(FLOW_METHODS)}, got {self.flow_method!r}")
        if self.flow_model not in FLOW_MODELS:
            raise ValueError(f"flow_model must be one of {', '.join(FLOW_MODELS)}, got {self.flow_model!r}")
        if self.warp_order not in (1, 3, 5):
            raise ValueError(f"warp_order must be 1, 3 or 5, got {self.warp_order}")
        if self.bits not in (8, 16):
            raise ValueError(f"bits must be 8 or 16, got {self.bits}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.flow_refinements < 0:
            raise ValueError(f"flow_refinements must be >= 0, got {self.flow_refinements}")


@dataclass(frozen=True)
class PairJob:
    """One captured pair and where its outputs go."""

    name: str                # '<scene>/<seq>/<idx>'
    sharp: Path
    blur: Path
    out_sharp: Path
    out_blur: Path


@dataclass
class SceneResult:
    """What :func:`process_scene` did."""

    scene: str
    done: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    report: Path | None = None


# --------------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------------

def _find_one(folder: Path, stem: str) -> Path | None:
    hits = sorted(p for p in folder.iterdir() if p.is_file() and p.stem == stem and p.suffix.lower() in _SUFFIXES)
    if len(hits) > 1:
        raise CaptureError(f"{folder}: several files for {stem!r}: {', '.join(p.name for p in hits)}")
    return hits[0] if hits else None


def find_scenes(session: str | os.PathLike) -> list[Path]:
    """Scene folders of a session: sub-folders holding a ``reference_sharp.*`` (or the session itself)."""
    session = Path(session)
    if not session.is_dir():
        raise CaptureError(f"{session}: session folder not found")
    if _find_one(session, "reference_sharp") is not None:
        return [session]
    scenes = sorted(p for p in session.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not scenes:
        raise CaptureError(f"{session}: no scene folders (expected <scene>/reference_sharp.<ext> and pairs)")
    return scenes


def find_pair_jobs(scene_dir: Path, out_root: Path, split: str) -> tuple[list[PairJob], list[str]]:
    """Pairs of a scene (``<seq>/<idx>_{sharp,blur}.<ext>``) and problems found (unpaired files)."""
    jobs, problems = [], []
    scene = scene_dir.name
    for seq_dir in sorted(p for p in scene_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found: dict[str, dict[str, Path]] = {}
        for f in sorted(seq_dir.iterdir()):
            if not f.is_file() or f.suffix.lower() not in _SUFFIXES:
                continue
            m = PAIR_RE.match(f.stem)
            if not m:
                problems.append(f"{f}: not named <idx>_sharp.<ext> or <idx>_blur.<ext>; ignored")
                continue
            slot = found.setdefault(m["idx"], {})
            if m["kind"] in slot:
                problems.append(f"{f}: a second {m['kind']} file for index {m['idx']} (also {slot[m['kind']].name})")
                continue
            slot[m["kind"]] = f
        for idx, slot in sorted(found.items()):
            if set(slot) != {"sharp", "blur"}:
                missing = ({"sharp", "blur"} - set(slot)).pop()
                problems.append(f"{seq_dir}/{idx}: the {missing} frame is missing; pair skipped")
                continue
            jobs.append(PairJob(f"{scene}/{seq_dir.name}/{idx}", slot["sharp"], slot["blur"],
                                *pair_paths(out_root, split, scene, seq_dir.name, idx)))
    return jobs, problems


# --------------------------------------------------------------------------------------------------
# Per-frame chain
# --------------------------------------------------------------------------------------------------

def _read(path: Path, calib: CaptureCalibration | None, pattern: str | None = None) -> RawFrame:
    black = calib.black_level if calib is not None else None
    white = calib.white_level if calib is not None else None
    return read_raw(path, pattern=pattern or (calib.pattern if calib is not None else None), black_level=black,
                    white_level=white)


def develop_pair(sharp_cfa: np.ndarray, blur_cfa: np.ndarray, calib: CaptureCalibration, isp: IspConfig,
                 flow: np.ndarray | None = None, warp_order: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour correction, photometric alignment, ISP and (if ``flow`` is given) geometric alignment.

    Args:
        sharp_cfa, blur_cfa: (H, W) Bayer frames of camera S and camera B, normalised linear.
        calib: both cameras' constants.
        isp: ISP settings (pattern, white balance, colour matrix, precision).
        flow: (H, W, 2) flow of the scene's reference pair, or None to skip the warp.
        warp_order: spline order of the warp.

    Returns:
        ``(sharp_rgb, blur_rgb, beta)``: (H, W, 3) sRGB float images in [0, 1] (the blurred one warped
        onto camera S's grid) and the (3,) photometric coefficients applied to the blurred frame.
    """
    s = apply_color_correction(sharp_cfa, calib.sharp, isp.pattern)
    b = apply_color_correction(blur_cfa, calib.blur, isp.pattern)
    beta = photometric_beta(s, b, isp.pattern)
    b = apply_photometric(b, beta, isp.pattern)
    s_rgb = run_isp(s, isp)
    b_rgb = run_isp(b, isp)
    if flow is not None:
        b_rgb, _ = warp_image(b_rgb, flow, order=warp_order)
    return s_rgb, b_rgb, beta


def isp_config(calib: CaptureCalibration, options: CaptureOptions) -> IspConfig:
    return IspConfig(pattern=calib.pattern, white_balance=calib.white_balance, ccm=calib.ccm, dtype=options.dtype,
                     wb_stage=options.wb_stage)


# A worker process's scene: set by its initializer so the flow field is not pickled with every pair.
# Never set in the calling process (workers=1 passes the scene to _run_pair).
_CTX: dict = {}


def _init_worker(ctx: dict) -> None:
    _CTX.clear()
    _CTX.update(ctx)


def _run_pair(job: PairJob, ctx: dict | None = None) -> dict:
    from ..data.layout import write_image

    ctx = _CTX if ctx is None else ctx
    calib, isp, flow, opts = ctx["calib"], ctx["isp"], ctx["flow"], ctx["options"]
    try:
        fs = _read(job.sharp, calib)
        fb = _read(job.blur, calib)
        if fs.cfa.shape != fb.cfa.shape:
            raise CaptureError(f"{job.blur}: size {fb.cfa.shape} differs from {job.sharp.name}'s {fs.cfa.shape}")
        try:
            s_rgb, b_rgb, beta = develop_pair(fs.cfa, fb.cfa, calib, isp, flow, opts.warp_order)
        except ValueError as exc:  # the chain's messages say what, these name the files
            raise CaptureError(f"{job.sharp} / {job.blur.name}: {exc}") from None
        write_image(job.out_sharp, s_rgb, bits=opts.bits)
        write_image(job.out_blur, b_rgb, bits=opts.bits)
    except (RawFormatError, CaptureError, ValueError, OSError) as exc:
        return {"name": job.name, "error": str(exc)}
    saturated = float(np.mean(fb.cfa >= 0.999))
    return {"name": job.name, "beta": [float(v) for v in beta], "blur_saturated_fraction": saturated}


# --------------------------------------------------------------------------------------------------
# Scene and session
# --------------------------------------------------------------------------------------------------

def resolve_calibration(scene_dir: Path, session_calib: CaptureCalibration | None, grid: tuple[int, int]
                        ) -> tuple[CaptureCalibration, str]:
    """The calibration a scene uses and a sentence saying where it came from (for the report)."""
    own = scene_dir / "calibration.json"
    if own.is_file():
        try:
            return load_calibration(own), f"scene file {own}"
        except ValueError as exc:
            raise CaptureError(str(exc)) from None
    lb_s, lb_b = _find_one(scene_dir, "lightbox_sharp"), _find_one(scene_dir, "lightbox_blur")
    if lb_s is not None or lb_b is not None:
        if lb_s is None or lb_b is None:
            raise CaptureError(f"{scene_dir}: found only one light-box frame; both lightbox_sharp.<ext> and "
                               f"lightbox_blur.<ext> are needed")
        fs, fb = _read(lb_s, session_calib), _read(lb_b, session_calib)
        if fs.pattern != fb.pattern or fs.cfa.shape != fb.cfa.shape:
            raise CaptureError(f"{scene_dir}: the light-box frames differ in pattern or size")
        try:
            calib = calibrate_cameras(fs.cfa, fb.cfa, fs.pattern, grid=grid,
                                      ccm=None if session_calib is None else session_calib.ccm,
                                      black_level=None if session_calib is None else session_calib.black_level,
                                      white_level=None if session_calib is None else session_calib.white_level,
                                      source=f"{lb_s.name}, {lb_b.name}")
        except ValueError as exc:
            raise CaptureError(f"{scene_dir}: light-box calibration failed: {exc}") from None
        return calib, f"light-box frames {lb_s.name}, {lb_b.name} in {scene_dir}"
    if session_calib is None:
        raise CaptureError(f"{scene_dir}: no calibration: give --calib, or put calibration.json or "
                           f"lightbox_sharp/lightbox_blur frames in the scene folder")
    return session_calib, f"session file {session_calib.source or '(given)'}"


def process_scene(scene_dir: str | os.PathLike, out_root: str | os.PathLike,
                  calib: CaptureCalibration | None = None, options: CaptureOptions = CaptureOptions()
                  ) -> SceneResult:
    """Run the whole chain over one scene folder; see the module docstring for the layout.

    Bad pair files are reported in the result and the report, and the rest carry on.

    Raises:
        CaptureError: the scene cannot be processed at all (no calibration, no reference pair).
    """
    from tqdm import tqdm

    scene_dir, out_root = Path(scene_dir), Path(out_root)
    result = SceneResult(scene=scene_dir.name)
    jobs, problems = find_pair_jobs(scene_dir, out_root, options.split)
    result.errors.extend(problems)
    report_path = out_root / REPORTS / options.split / f"{scene_dir.name}.json"
    previous = {}
    if report_path.is_file() and not options.overwrite:
        try:
            previous = json.loads(report_path.read_text()).get("pairs", {})
        except (OSError, json.JSONDecodeError, AttributeError):
            previous = {}
    for folder in {j.out_sharp.parent for j in jobs} | {report_path.parent}:
        remove_stale_temps(folder)  # half-written files of a killed run
    # A pair is finished when both PNGs exist and the report describes it; a run killed between the two
    # leaves PNGs without a record, and such a pair is redone so the report covers everything on disk.
    todo = [j for j in jobs if options.overwrite or j.name not in previous
            or not (j.out_sharp.is_file() and j.out_blur.is_file())]
    result.skipped = len(jobs) - len(todo)
    if not todo:
        result.report = report_path if report_path.is_file() else None
        return result

    scene_calib, calib_source = resolve_calibration(scene_dir, calib, options.grid)
    isp = isp_config(scene_calib, options)
    ref_s, ref_b = _find_one(scene_dir, "reference_sharp"), _find_one(scene_dir, "reference_blur")
    if ref_s is None or ref_b is None:
        raise CaptureError(f"{scene_dir}: the static reference pair reference_sharp.<ext> / reference_blur.<ext> "
                           f"is missing (needed for geometric alignment)")
    try:
        fs, fb = _read(ref_s, scene_calib), _read(ref_b, scene_calib)
        s_rgb, b_rgb, ref_beta = develop_pair(fs.cfa, fb.cfa, scene_calib, isp, flow=None)
        flow = estimate_flow(s_rgb, b_rgb, options.flow_method, options.flow_model, options.flow_refinements)
    except (RawFormatError, ValueError) as exc:
        raise CaptureError(f"{ref_s} / {ref_b.name}: reference pair: {exc}") from None
    stats = FlowStats.of(flow)

    # Records of pairs still on disk; the report is rewritten after every pair, so a killed run's
    # report describes what it finished.
    on_disk = {j.name for j in jobs if j.out_sharp.is_file() and j.out_blur.is_file()}
    records = {k: v for k, v in previous.items() if k in on_disk or k not in {j.name for j in jobs}}
    report = _scene_report(scene_dir, options, scene_calib, calib_source,
                           {"sharp": str(ref_s), "blur": str(ref_b), "beta": [float(v) for v in ref_beta],
                            "flow": asdict(stats)}, records, result.errors)
    ctx = {"calib": scene_calib, "isp": isp, "flow": flow, "options": options}
    bar = tqdm(total=len(todo), desc=f"capture {scene_dir.name}", unit="pair", disable=not options.progress)
    try:
        if options.workers == 1:
            outputs = (_run_pair(j, ctx) for j in todo)
        else:
            ex = ProcessPoolExecutor(max_workers=options.workers, initializer=_init_worker, initargs=(ctx,))
            outputs = ex.map(_run_pair, todo)
        for rec in outputs:
            _collect(rec, records, result)
            write_json(report_path, report)
            bar.update(1)
    finally:
        bar.close()
        if options.workers > 1:
            ex.shutdown(cancel_futures=True)
    write_json(report_path, report)
    result.report = report_path
    return result


def _scene_report(scene_dir: Path, options: CaptureOptions, calib: CaptureCalibration, calib_source: str,
                  reference: dict, records: dict, errors: list[str]) -> dict:
    """The JSON report of a scene; ``records`` and ``errors`` are the live objects the loop fills."""
    return {
        "scene": scene_dir.name, "split": options.split, "session_folder": str(scene_dir),
        "calibration": {"source": calib_source, "pattern": calib.pattern,
                        "white_balance": list(calib.white_balance),
                        "ccm": [list(r) for r in calib.ccm],
                        "colour_fit_rms": {"sharp": list(calib.sharp.fit_rms), "blur": list(calib.blur.fit_rms)}},
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()
                    if k not in ("progress", "workers", "overwrite")},
        "reference": reference,
        "pairs": records,
        "errors": errors,
    }


def _collect(rec: dict, records: dict, result: SceneResult) -> None:
    if "error" in rec:
        result.failed += 1
        result.errors.append(rec["error"])
    else:
        result.done += 1
        records[rec["name"]] = {k: v for k, v in rec.items() if k != "name"}


def process_session(session: str | os.PathLike, out_root: str | os.PathLike, calib: CaptureCalibration | None = None,
                    options: CaptureOptions = CaptureOptions()) -> list[SceneResult]:
    """Run :func:`process_scene` over every scene of a session; a failing scene is reported, not fatal."""
    results = []
    scenes = find_scenes(session)
    check_output_dir(out_root)  # before the work: a file in the way, no permission, read-only
    for scene_dir in scenes:
        try:
            results.append(process_scene(scene_dir, out_root, calib, options))
        except CaptureError as exc:
            results.append(SceneResult(scene=scene_dir.name, failed=1, errors=[str(exc)]))
    return results
