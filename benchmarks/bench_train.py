"""Training speed on the CPU: steps/s of one optimisation step (forward, multi-scale loss, backward, Adam)
for configs/quick.yaml (the small preset, at its own batch and patch size and at the published batch 12,
256x256) and configs/lbag.yaml (the full model, batch 12, 256x256).

The step is timed on random patches (data loading is excluded: it runs in DataLoader workers in
parallel). Each config runs in a fresh subprocess so its peak RSS is its own; the full model is slow on
a CPU, so it gets 1 warm-up and 2 timed steps. The machine is shared with other jobs: the ratio
quick / lbag matters more than the absolute numbers.

Usage: python benchmarks/bench_train.py [--threads 2] [--lbag-steps 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import markdown_table, timeit, write_result

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def child(config: str, batch: int, patch: int, steps: int, threads: int) -> None:
    import torch
    from common import peak_rss_mb

    from lbag.config import load_config
    from lbag.losses import MultiScaleLoss
    from lbag.train import build_from_config

    torch.set_num_threads(threads)
    cfg = load_config(CONFIGS / config)
    torch.manual_seed(0)
    model = build_from_config(cfg).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    crit = MultiScaleLoss(cfg.loss.l1, cfg.loss.ssim, cfg.loss.fft, cfg.loss.mask if model.config.gated else 0.0,
                          cfg.loss.shift)
    blur, sharp = torch.rand(batch, 3, patch, patch), torch.rand(batch, 3, patch, patch)
    mask = (torch.rand(batch, 1, patch, patch) > 0.8).float()

    def step():
        opt.zero_grad(set_to_none=True)
        crit(model(blur), sharp, mask).total.backward()
        opt.step()

    t = timeit(step, warmup=1, runs=steps)
    print(json.dumps({"median_s": t["median"], "min_s": t["min"], "peak_mb": peak_rss_mb(),
                      "params": sum(p.numel() for p in model.parameters()), "shift": cfg.loss.shift,
                      "model": cfg.model.name}))


def _run(config, batch, patch, steps, threads):
    out = subprocess.run([sys.executable, __file__, "--child", config, str(batch), str(patch), str(steps),
                          str(threads)], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick-steps", type=int, default=5)
    ap.add_argument("--lbag-steps", type=int, default=2)
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        c, b, p, s, t = args.child
        child(c, int(b), int(p), int(s), int(t))
        return
    from lbag.config import load_config

    q = load_config(CONFIGS / "quick.yaml")
    cases = [("quick.yaml", q.optim.batch_size, q.data.patch_size, args.quick_steps),
             ("quick.yaml", 12, 256, args.quick_steps),
             ("lbag.yaml", 12, 256, args.lbag_steps)]
    rows, speeds = [], {}
    for config, batch, patch, steps in cases:
        r = _run(config, batch, patch, steps, args.threads)
        if "error" in r:
            rows.append([config, "", batch, f"{patch}x{patch}", "failed: " + r["error"], "", "", ""])
            continue
        speeds[(config, batch, patch)] = 1 / r["median_s"]
        rows.append([config, r["model"], batch, f"{patch}x{patch}", f"{r['median_s']:.2f}", f"{1 / r['median_s']:.3f}",
                     f"{batch / r['median_s']:.2f}", f"{r['peak_mb']:.0f}"])
    body = (f"One optimisation step (forward + multi-scale loss with the config's shift setting + backward + "
            f"Adam), float32, {args.threads} threads, random patches; median of the timed steps after 1 warm-up "
            f"({args.quick_steps} timed for quick.yaml, {args.lbag_steps} for lbag.yaml); peak RSS of the "
            "process.\n\n" + markdown_table(
                ["config", "model", "batch", "patch", "s/step", "steps/s", "patches/s", "peak RSS MB"], rows))
    small, full = speeds.get(("quick.yaml", 12, 256)), speeds.get(("lbag.yaml", 12, 256))
    if small and full:
        body += (f"\n\nAt batch 12, 256x256 the small preset runs {small / full:.0f}x more steps per second than "
                 "the full model on this machine. At the lbag.yaml rate, the paper's 300k steps would take "
                 f"{300_000 / full / 86400:.0f} days on this CPU (the paper: 70 h on one RTX 3090).")
    write_result("train", "Training speed (CPU)", body)


if __name__ == "__main__":
    main()
