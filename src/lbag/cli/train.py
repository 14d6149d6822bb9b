"""``lbag train``: train LBAG / MIMO-UNet(+) / ablations from a YAML config (Li et al., AAAI 2023).

Single process: ``lbag train -c configs/lbag.yaml``. Several GPUs or nodes:
``torchrun --nproc_per_node=N -m lbag train -c configs/lbag.yaml`` (every rank runs this command).
"""

from __future__ import annotations

import os

from . import UserError


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config",
                       description="Train LBAG, MIMO-UNet(+) or an ablation from a YAML config. "
                                   "Multi-GPU/multi-node: launch with torchrun (nccl on GPUs, gloo on CPU).")
    p.add_argument("-c", "--config", required=True, help="YAML config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set optim.max_steps=1000")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoint in train.out_dir (optimizer, scheduler, RNG and "
                        "data position restored)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import ConfigError, load_config
    from ..data.layout import ImageReadError
    from ..models import CheckpointError
    from ..train import TrainingDiverged, train

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    try:
        result = train(cfg, resume=args.resume)
    except (FileNotFoundError, CheckpointError, ConfigError, ImageReadError) as exc:
        raise UserError(str(exc)) from None
    except TrainingDiverged as exc:
        print(f"lbag train: stopped: {exc}")
        return 1
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for the run
        return 0
    best = f", best PSNR_w {result.best_psnr_w:.3f} dB" if result.best_psnr_w is not None else ""
    print(f"lbag train: finished at step {result.step}{best}; last checkpoint {result.last_checkpoint}")
    return 0
