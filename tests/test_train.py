"""The training loop (lbag.train): a few steps, exact resume, atomic checkpoints, NaN handling, DDP."""

import os
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lbag.config import load_config
from lbag.data.layout import write_image, write_mask
from lbag.losses import LossResult, MultiScaleLoss
from lbag.models import load_model
from lbag.rundir import STATE_VERSION, RunDir, load_training_state
from lbag.train import (RunProgress, StepOutcome, StepSampler, TrainingDiverged, build_from_config,
                        latest_checkpoint, train, train_step)


def _make_dataset(root, n_train=4, n_test=2, size=64, seed=0):
    """Tiny pairs in the published layout: textured background, a box-blurred square, exact mask."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            sharp = rng.random((size, size, 3)).astype(np.float32) * 0.5 + 0.25
            blur = sharp.copy()
            mask = np.zeros((size, size), bool)
            y, x = rng.integers(4, size // 2, 2)
            blur[y:y + 16, x:x + 16] = blur[y:y + 16, x:x + 16].mean(axis=(0, 1))
            mask[y:y + 16, x:x + 16] = True
            if split == "test" and i == 1:
                mask[:] = False  # an empty mask: PSNR_w undefined for this image
            d = root / "dataset" / split / "s01" / f"{i:02d}"
            write_image(d / "00_sharp.png", sharp)
            write_image(d / "00_blur.png", blur)
            write_mask(root / "masks" / split / "s01" / f"{i:02d}" / "00.png", mask)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    _make_dataset(root)
    return root


def _cfg(data_root, out_dir, **over):
    base = {
        "model": {"name": "lbag_small", "num_res": 1, "width": 8},
        "data": {"root": str(data_root), "patch_size": 48, "num_workers": 0, "cache_dir": str(out_dir / "cache")},
        "optim": {"lr": 1e-3, "batch_size": 2, "max_steps": 4},
        "train": {"out_dir": str(out_dir), "val_every": 0, "ckpt_every": 2, "keep_last": 2, "log_every": 1,
                  "progress": False, "val_aligned": False, "seed": 3},
    }
    for dotted, value in over.items():
        sec, key = dotted.split("__")
        base[sec][key] = value
    return load_config(overrides=base)


def _weights(path):
    return load_model(path).state_dict()


def test_sampler_position_is_a_function_of_the_step():
    s = StepSampler(5, 4, seed=1)
    full = [s.batch_keys(i) for i in range(6)]
    later = StepSampler(5, 4, seed=1, start_step=3, max_steps=6)
    assert list(later) == full[3:]
    # every item of an epoch is used exactly once
    flat = [k for b in full for k in b][:10]
    assert sorted(i for e, i in flat if e == 0) == list(range(5))
    # two ranks split each global batch without overlap
    r0, r1 = StepSampler(5, 4, seed=1, rank=0, world=2), StepSampler(5, 4, seed=1, rank=1, world=2)
    assert sorted(r0.batch_keys(2) + r1.batch_keys(2)) == sorted(full[2])
    with pytest.raises(ValueError, match="divisible"):
        StepSampler(5, 3, seed=0, world=2)


def test_few_steps_checkpoints_logs_and_validation(data_root, tmp_path):
    cfg = _cfg(data_root, tmp_path / "run", optim__max_steps=6, train__val_every=3)
    res = train(cfg, log=lambda *_: None)
    assert res.step == 6 and res.final_loss is not None and np.isfinite(res.final_loss)
    steps = sorted(int(p.name[5:13]) for p in (tmp_path / "run" / "checkpoints").glob("step_*.safetensors"))
    assert steps == [4, 6]  # keep_last = 2
    assert res.best_psnr_w is not None and (tmp_path / "run" / "best.safetensors").is_file()
    text = (tmp_path / "run" / "metrics.csv").read_text()
    for key in ("loss/total", "loss/l1", "loss/ssim", "loss/fft", "loss/mask", "lr", "val/psnr", "val/psnr_w",
                "val/ssim_w", "val/n_masked"):
        assert f",{key}," in text, key
    # the empty-mask test image is excluded from the weighted means, and counted
    assert "val/n_masked,1" in text and "val/n_images,2" in text
    m = load_model(res.last_checkpoint)
    assert m.config.num_res == 1 and m.config.width == 8
    # lbag report draws the curves from the CSV
    from lbag.cli import main
    assert main(["report", str(tmp_path / "run"), "-o", str(tmp_path / "r.png")]) == 0
    from PIL import Image
    assert Image.open(tmp_path / "r.png").size[0] > 300
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_resume_equals_uninterrupted(data_root, tmp_path):
    a = train(_cfg(data_root, tmp_path / "a", optim__max_steps=4), log=lambda *_: None)
    train(_cfg(data_root, tmp_path / "b", optim__max_steps=2), log=lambda *_: None)
    b = train(_cfg(data_root, tmp_path / "b", optim__max_steps=4), resume=True, log=lambda *_: None)
    assert b.step == 4
    wa, wb = _weights(a.last_checkpoint), _weights(b.last_checkpoint)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # and the run really moved the weights (so equality is not trivial)
    init = _weights(tmp_path / "b" / "checkpoints" / "step_00000002.safetensors")
    assert any(not torch.equal(init[k], wb[k]) for k in wb)
    # the CSV of the resumed run has each step once
    rows = [r.split(",") for r in (tmp_path / "b" / "metrics.csv").read_text().splitlines()[1:]]
    assert sorted(int(r[0]) for r in rows if r[2] == "loss/total") == [1, 2, 3, 4]


def test_resume_takes_the_configs_new_learning_rate_schedule(data_root, tmp_path):
    # Saved: lr 1e-3, constant. Resumed at step 2 with lr 4e-3 halving every 3 steps, as if that had
    # always been the schedule: step 3 updates with 4e-3, steps 4-5 with 2e-3. The CSV logs the rate
    # after each step's scheduler step (the next step's rate).
    train(_cfg(data_root, tmp_path / "r", optim__max_steps=2), log=lambda *_: None)
    lines = []
    train(_cfg(data_root, tmp_path / "r", optim__max_steps=5, optim__lr=4e-3, optim__lr_step=3), resume=True,
          log=lines.append)
    rows = [r.split(",") for r in (tmp_path / "r" / "metrics.csv").read_text().splitlines()[1:]]
    lrs = {int(r[0]): float(r[3]) for r in rows if r[2] == "lr"}
    assert lrs == pytest.approx({1: 1e-3, 2: 1e-3, 3: 2e-3, 4: 2e-3, 5: 2e-3})
    assert any("lr_step 100000 -> 3" in line and "lr 0.004 from step 2" in line for line in lines), lines
    # An unchanged schedule is left alone (test_resume_equals_uninterrupted: bit-identical).
    lines.clear()
    train(_cfg(data_root, tmp_path / "r", optim__max_steps=6, optim__lr=4e-3, optim__lr_step=3), resume=True,
          log=lines.append)
    assert not any("learning-rate schedule" in line for line in lines)


@pytest.mark.slow
def test_bf16_fast_path_runs_and_resumes_exactly(data_root, tmp_path, monkeypatch):
    """The CPU fast path (bf16 autocast + channels_last, taken where bf16 is native) forced on, so it is
    exercised on any CPU: it trains, differs from float32, and resumes bit-identically."""
    import lbag.train as T

    f32 = train(_cfg(data_root, tmp_path / "f32", optim__max_steps=2), log=lambda *_: None)
    monkeypatch.setattr(T, "bf16_supported", lambda device: True)
    a = train(_cfg(data_root, tmp_path / "a", optim__max_steps=4), log=lambda *_: None)
    train(_cfg(data_root, tmp_path / "b", optim__max_steps=2), log=lambda *_: None)
    b = train(_cfg(data_root, tmp_path / "b", optim__max_steps=4), resume=True, log=lambda *_: None)
    wa, wb = _weights(a.last_checkpoint), _weights(b.last_checkpoint)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    w2, wf = _weights(tmp_path / "b" / "checkpoints" / "step_00000002.safetensors"), _weights(f32.last_checkpoint)
    assert any(not torch.equal(w2[k], wf[k]) for k in wf)  # bf16 really ran
    assert all(torch.allclose(w2[k], wf[k], atol=5e-3) for k in wf)  # ... and computed the same thing


def test_resume_without_checkpoint(data_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="--resume"):
        train(_cfg(data_root, tmp_path / "empty"), resume=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_a_config_error_before_anything_is_written(data_root, tmp_path):
    from lbag.config import ConfigError

    with pytest.raises(ConfigError, match="train.device: .*no CUDA device"):
        train(_cfg(data_root, tmp_path / "run", train__device="cuda"))
    assert not (tmp_path / "run").exists()


class _DiskFull:
    """Writing it fails half-way through a state file, as a full disk does."""

    def __reduce__(self):
        raise OSError("disk full")


def test_checkpoint_write_is_atomic(data_root, tmp_path):
    out = tmp_path / "run"
    train(_cfg(data_root, out, optim__max_steps=2), log=lambda *_: None)
    run = RunDir(out)
    before = run.latest()
    assert before.step == 2 and latest_checkpoint(out) == before

    model = load_model(before.weights)
    with pytest.raises(OSError, match="disk full"):
        run.save(4, model, {"optimizer": {}, "scheduler": {}, "rng": [{}], "late": _DiskFull()}, keep_last=1)
    assert (out / "checkpoints" / "step_00000004.safetensors").is_file()  # the weights were written ...
    assert run.latest() == before  # ... but without a state file step 4 is not "latest", and nothing was pruned
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]  # no temp files left
    state = load_training_state(before.state)
    assert state["step"] == 2 and state["version"] == STATE_VERSION and "optimizer" in state
    res = train(_cfg(data_root, out, optim__max_steps=4), resume=True, log=lambda *_: None)
    assert res.step == 4


class _NaNLoss(torch.nn.Module):
    """The real loss, with every term turned NaN (as a diverging run gives)."""

    def __init__(self):
        super().__init__()
        self.real = MultiScaleLoss()

    def forward(self, out, target, mask=None):
        r = self.real(out, target, mask)
        return LossResult(total=r.total * float("nan"), terms={"total": float("nan")}, n_nan=4)


def _one_step_setup(data_root, tmp_path):
    from torch.utils.data import default_collate

    from lbag.data import TrainDataset

    cfg = _cfg(data_root, tmp_path / "run")
    torch.manual_seed(0)
    model = build_from_config(cfg).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    data = TrainDataset(data_root, patch_size=48, cache_dir=tmp_path / "cache", seed=0)
    return model, optimizer, scheduler, default_collate([data[0], data[1]])


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")  # the skipped step comes first
def test_nan_loss_step_is_skipped_without_touching_the_weights(data_root, tmp_path):
    model, optimizer, scheduler, batch = _one_step_setup(data_root, tmp_path)
    cpu = torch.device("cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = train_step(model, _NaNLoss(), optimizer, scheduler, batch, device=cpu)
    assert bad.skipped and bad.terms == {} and not np.isfinite(bad.loss)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters()) and optimizer.state_dict()["state"] == {}
    assert scheduler.last_epoch == 1  # the lr schedule follows the step count, skipped or not

    good = train_step(model, MultiScaleLoss(), optimizer, scheduler, batch, device=cpu, grad_clip=1.0)
    assert not good.skipped and np.isfinite(good.loss) and good.terms["loss/total"] == good.loss
    assert {"loss/l1", "loss/ssim", "loss/fft", "loss/nan_terms"} <= set(good.terms)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_steps_in_a_row_stop_the_run_and_keep_the_last_good_checkpoint():
    good, bad = StepOutcome(False, 0.5, {"loss/total": 0.5}), StepOutcome(True, float("nan"), {})
    last = Path("run/checkpoints/step_00000002.safetensors")
    p = RunProgress(step=2, last_ckpt=last)
    with pytest.warns(UserWarning, match=r"step 3: non-finite loss \(nan\); step skipped \(1 in a row\)"):
        p.record(bad, max_bad_steps=3)
    assert (p.step, p.skipped, p.bad_run) == (3, 1, 1)
    p.record(good, max_bad_steps=3)
    assert (p.step, p.skipped, p.bad_run) == (4, 1, 0) and p.checkpoint_due(every=2, max_steps=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p.record(bad, max_bad_steps=3)
        p.record(bad, max_bad_steps=3)
        assert p.step == 6 and not p.checkpoint_due(every=2, max_steps=6)  # none inside a run of bad steps
        with pytest.raises(TrainingDiverged, match="3 consecutive steps .* at step 7") as exc:
            p.record(bad, max_bad_steps=3)
    assert str(last) in str(exc.value) and p.skipped == 4


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, data_root, out_dir, result_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from pathlib import Path
    cfg = _cfg(Path(data_root), Path(out_dir), optim__batch_size=4, optim__max_steps=3, train__ckpt_every=3)
    res = train(cfg, log=lambda *_: None)
    torch.save(res.model.state_dict(), os.path.join(result_dir, f"rank{rank}.pt"))


@pytest.mark.slow
def test_ddp_two_gloo_processes_end_identical(data_root, tmp_path):
    import torch.multiprocessing as mp

    out, results = tmp_path / "ddp", tmp_path / "results"
    results.mkdir()
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(data_root), str(out), str(results)), nprocs=2, join=True)
    w0 = torch.load(results / "rank0.pt", weights_only=True)
    w1 = torch.load(results / "rank1.pt", weights_only=True)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    saved = _weights(latest_checkpoint(out).weights)
    assert all(torch.equal(saved[k], w0[k]) for k in w0)
    state = torch.load(latest_checkpoint(out).state, weights_only=False)
    assert state["world_size"] == 2 and len(state["rng"]) == 2


def test_cli_config_typo_is_a_user_error(tmp_path, capsys):
    from lbag.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("optim:\n  lr: 1.0e-4\n  bacth_size: 2\n")
    assert main(["train", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "optim.bacth_size" in err and str(cfg) in err
