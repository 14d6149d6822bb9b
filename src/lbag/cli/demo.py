"""``lbag demo``: the main job on the embedded default (what ``make demo`` runs)."""

from __future__ import annotations

import time


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo on embedded synthetic data")
    p.add_argument("--size", type=int, default=256, help="side of the demo image in pixels")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..models import lbag_small

    torch.manual_seed(0)
    model = lbag_small().eval()
    x = torch.rand(1, 3, args.size, args.size)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model(x)
    dt = time.perf_counter() - t0
    n = sum(p.numel() for p in model.parameters())
    print(f"lbag_small ({n:,} parameters, untrained) on a {args.size}x{args.size} random image: "
          f"{dt * 1000:.0f} ms")
    for s, img, m in zip(("1/4", "1/2", "1"), out.images, out.masks):
        print(f"  scale {s:>3}: image {tuple(img.shape)}, gate mean {m.mean():.3f}")
    return 0
