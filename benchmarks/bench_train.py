"""Training speed on the CPU: one optimisation step (forward, multi-scale loss, backward, Adam) in
float32 and on the fast path ``lbag train`` uses where bf16 is native (bf16 autocast + channels_last,
loss in float32), for the small preset (configs/quick.yaml) at batch 8, 128x128 and 256x256, with the
shift-min loss off and on; optionally configs/lbag.yaml (the full model, batch 12, 256x256).

The step is timed on random patches (data loading is excluded: it runs in DataLoader workers in
parallel). Each case runs in a fresh subprocess so its peak RSS is its own; the full model is slow on
a CPU, so it gets 1 warm-up and 2 timed steps. Ratios come from the same run.

Usage: python benchmarks/bench_train.py [--threads 2] [--quick-steps 4] [--lbag-steps 0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import markdown_table, timeit, write_result

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


MID = {"num_res": 4, "width": 24}  # the mid-size preset candidate of issue 11 (2.09 M parameters)


def child(config: str, batch: int, patch: int, steps: int, threads: int, fast: bool, shift: bool,
          mid: bool = False) -> None:
    import torch
    from common import peak_rss_mb

    from lbag.config import load_config
    from lbag.losses import MultiScaleLoss
    from lbag.train import build_from_config

    torch.set_num_threads(threads)
    cfg = load_config(CONFIGS / config, overrides={"model": MID} if mid else None)
    torch.manual_seed(0)
    fmt = torch.channels_last if fast else torch.contiguous_format
    model = build_from_config(cfg).train().to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    crit = MultiScaleLoss(cfg.loss.l1, cfg.loss.ssim, cfg.loss.fft, cfg.loss.mask if model.config.gated else 0.0,
                          shift)
    blur = torch.rand(batch, 3, patch, patch).contiguous(memory_format=fmt)
    sharp = torch.rand(batch, 3, patch, patch)
    mask = (torch.rand(batch, 1, patch, patch) > 0.8).float()

    def step():  # what lbag.train does per step
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            out = model(blur)
        out = type(out)([o.float() for o in out.images], [None if m is None else m.float() for m in out.masks])
        crit(out, sharp, mask).total.backward()
        opt.step()

    t = timeit(step, warmup=1, runs=steps)
    print(json.dumps({"median_s": t["median"], "min_s": t["min"], "peak_mb": peak_rss_mb(),
                      "params": sum(p.numel() for p in model.parameters()), "model": cfg.model.name}))


def _run(config, batch, patch, steps, threads, fast, shift, mid=False):
    out = subprocess.run([sys.executable, __file__, "--child", config, str(batch), str(patch), str(steps),
                          str(threads), str(int(fast)), str(int(shift)), str(int(mid))],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick-steps", type=int, default=4)
    ap.add_argument("--lbag-steps", type=int, default=0, help="timed steps of the full model (0: skip it)")
    ap.add_argument("--child", nargs=8, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        c, b, p, s, t, f, sh, m = args.child
        child(c, int(b), int(p), int(s), int(t), f == "1", sh == "1", m == "1")
        return
    from lbag.accel import cpu_has_bf16

    cases = [("quick.yaml", 8, 128, args.quick_steps, fast, shift, False) for fast, shift in
             ((False, False), (True, False), (False, True), (True, True))]
    cases += [("quick.yaml", 8, 128, args.quick_steps, fast, False, True) for fast in (False, True)]
    cases += [("quick.yaml", 8, 256, args.quick_steps, fast, False, False) for fast in (False, True)]
    if args.lbag_steps:
        cases += [("lbag.yaml", 12, 256, args.lbag_steps, fast, True, False) for fast in (False, True)]
    rows, t = [], {}
    for config, batch, patch, steps, fast, shift, mid in cases:
        if fast and not cpu_has_bf16():
            continue
        r = _run(config, batch, patch, steps, args.threads, fast, shift, mid)
        path = "bf16 + channels_last" if fast else "float32"
        if "error" in r:
            rows.append([config, "", batch, f"{patch}x{patch}", path, shift, "failed: " + r["error"], "", ""])
            continue
        t[(config + (" mid" if mid else ""), patch, fast, shift)] = r["median_s"]
        rows.append([config, r["model"] + (" (4 blocks, width 24)" if mid else ""), batch, f"{patch}x{patch}", path, shift, f"{r['median_s']:.2f}",
                     f"{batch / r['median_s']:.1f}", f"{r['peak_mb']:.0f}"])
    body = (f"One optimisation step (forward + multi-scale loss + backward + Adam), {args.threads} threads, "
            f"random patches; median of {args.quick_steps} timed steps after 1 warm-up ({args.lbag_steps} for "
            "lbag.yaml); peak RSS of the process. The fast path is what `lbag train` uses where bf16 is native "
            "(train.amp); the loss is float32 on both paths.\n\n" + markdown_table(
                ["config", "model", "batch", "patch", "path", "shift-min", "s/step", "patches/s", "peak RSS MB"],
                rows))
    notes = []
    for config, patch, shift in (("quick.yaml", 128, False), ("quick.yaml", 256, False), ("lbag.yaml", 256, True)):
        f32, fast = t.get((config, patch, False, shift)), t.get((config, patch, True, shift))
        if f32 and fast:
            notes.append(f"{config} {patch}x{patch}: fast path {f32 / fast:.2f}x faster than float32")
    for fast in (False, True):
        off, on = t.get(("quick.yaml", 128, fast, False)), t.get(("quick.yaml", 128, fast, True))
        if off and on:
            notes.append(f"shift-min on / off, quick.yaml 128x128 {'fast' if fast else 'float32'}: {on / off:.2f}x "
                         "the step time")
    for fast in (False, True):
        small, mid = t.get(("quick.yaml", 128, fast, False)), t.get(("quick.yaml mid", 128, fast, False))
        if small and mid:
            notes.append(f"mid preset / lbag_small, 128x128 {'fast' if fast else 'float32'}: {mid / small:.2f}x "
                         "the step time")
    if notes:
        body += "\n\n" + "\n".join(f"- {n}" for n in notes)
    write_result("train", "Training speed (CPU)", body)


if __name__ == "__main__":
    main()
