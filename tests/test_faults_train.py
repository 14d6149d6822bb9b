"""Issue 12, training: state files loaded with weights_only=True (a crafted one is refused, never run),
fallback from a damaged newest checkpoint, leftovers of a killed run, damaged decode-cache entries,
oversized and mis-sized files in the training set."""

import os
import random
import warnings

import numpy as np
import pytest
import torch

from lbag.data import TrainDataset, write_image, write_mask
from lbag.train import latest_checkpoint, train
from test_faults_io import huge_png, killed_writer
from test_train import _cfg, _make_dataset, _weights


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    _make_dataset(root)
    return root


def _quiet(*_):
    pass


class _RunsCode:
    """Unpickling this calls os.system: what a crafted state file would do with weights_only=False."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_state_is_plain_tensors_and_a_crafted_state_is_refused(data_root, tmp_path):
    out = tmp_path / "run"
    train(_cfg(data_root, out, optim__max_steps=4), log=_quiet)
    state = torch.load(latest_checkpoint(out).state, weights_only=True)  # no allow-listed globals needed
    assert state["version"] == 2 and isinstance(state["rng"][0]["numpy"]["keys"], torch.Tensor)
    marker = tmp_path / "code_ran"
    crafted = dict(state, step=4, payload=_RunsCode(marker))
    torch.save(crafted, latest_checkpoint(out).state)
    logs = []
    with pytest.warns(UserWarning, match=r"step_00000004\.state\.pt: unreadable training state \(holds objects"):
        res = train(_cfg(data_root, out, optim__max_steps=6), resume=True, log=logs.append)
    assert not marker.exists()
    assert res.step == 6 and any("resumed from" in m and "step_00000002" in m for m in logs)


def test_truncated_newest_state_falls_back_to_the_newest_intact_checkpoint(data_root, tmp_path):
    out = tmp_path / "b"
    train(_cfg(data_root, out, optim__max_steps=4), log=_quiet)
    newest = latest_checkpoint(out).state
    newest.write_bytes(newest.read_bytes()[:300])
    logs = []
    with pytest.warns(UserWarning, match="cannot resume from step 4"):
        b = train(_cfg(data_root, out, optim__max_steps=6), resume=True, log=logs.append)
    assert any(m.startswith(f"lbag train: resumed from {out / 'checkpoints' / 'step_00000002.safetensors'} "
                            "at step 2") and "step_00000004.state.pt" in m for m in logs)
    assert b.step == 6 and latest_checkpoint(out).step == 6


def test_no_usable_checkpoint_is_one_clear_error(data_root, tmp_path, capsys):
    from lbag.cli import main

    out = tmp_path / "run"
    train(_cfg(data_root, out, optim__max_steps=2), log=_quiet)
    latest_checkpoint(out).state.write_bytes(b"")
    cfg_file = tmp_path / "c.yaml"
    import yaml

    from lbag.config import config_to_dict
    cfg_file.write_text(yaml.safe_dump(config_to_dict(_cfg(data_root, out, optim__max_steps=4))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["train", "-c", str(cfg_file), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no usable checkpoint to resume from" in err[0] and "step_00000002.state.pt" in err[0]


def test_format_1_state_files_still_resume(data_root, tmp_path):
    """Runs written before the tensor format (numpy / Python RNG tuples) resume unchanged."""
    a = train(_cfg(data_root, tmp_path / "a", optim__max_steps=4), log=_quiet)
    out = tmp_path / "b"
    train(_cfg(data_root, out, optim__max_steps=2), log=_quiet)
    path = latest_checkpoint(out).state
    state = torch.load(path, weights_only=True)
    for r in state["rng"]:
        n, p = r["numpy"], r["python"]
        r["numpy"] = ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
        r["python"] = (p["version"], tuple(p["state"].tolist()), p["gauss_next"])
    torch.save(dict(state, version=1), path)
    b = train(_cfg(data_root, out, optim__max_steps=4), resume=True, log=_quiet)
    wa, wb = _weights(a.last_checkpoint), _weights(b.last_checkpoint)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    random.seed(0)  # the resumed run restored the global streams; leave them seeded for other tests


def test_temporary_files_of_a_killed_run_are_removed(data_root, tmp_path):
    out = tmp_path / "run"
    train(_cfg(data_root, out, optim__max_steps=2), log=_quiet)
    left = [killed_writer(out / "checkpoints" / "step_00000004.state.pt", size=0),
            killed_writer(out / "metrics.csv", size=100)]
    train(_cfg(data_root, out, optim__max_steps=4), resume=True, log=_quiet)
    assert not any(p.exists() for p in left)
    assert not [p for p in out.rglob(".*") if p.is_file()]


def _pairs(root, n=3, size=64):
    rng = np.random.default_rng(0)
    d = root / "dataset" / "train" / "s01" / "00"
    for i in range(n):
        img = rng.random((size, size, 3))
        write_image(d / f"{i:02d}_sharp.png", img)
        write_image(d / f"{i:02d}_blur.png", img[::-1])
        m = np.zeros((size, size), bool)
        m[20:40, 20:40] = True
        write_mask(root / "masks" / "train" / "s01" / "00" / f"{i:02d}.png", m)
    return d


def test_damaged_cache_entry_is_decoded_again(tmp_path):
    _pairs(tmp_path / "ds")
    cache = tmp_path / "cache"
    first = TrainDataset(tmp_path / "ds", patch_size=32, cache_dir=cache, seed=1)[0]
    entries = sorted(cache.rglob("*.npy"))
    assert entries
    for e in entries:
        e.write_bytes(e.read_bytes()[:len(e.read_bytes()) // 2])
    with pytest.warns(UserWarning, match="damaged decode-cache entry"):
        again = TrainDataset(tmp_path / "ds", patch_size=32, cache_dir=cache, seed=1)[0]
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_oversized_and_mis_sized_files_are_skipped_naming_the_file(tmp_path):
    d = _pairs(tmp_path / "ds")
    huge_png(d / "01_blur.png")
    write_mask(tmp_path / "ds" / "masks" / "train" / "s01" / "00" / "02.png", np.ones((32, 64), bool))
    ds = TrainDataset(tmp_path / "ds", patch_size=32, cache_dir=tmp_path / "cache")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = [ds[i] for i in range(3)]
    text = "\n".join(str(w.message) for w in caught)
    assert "01_blur.png: the header declares 100000x100000 pixels" in text
    assert f"{tmp_path / 'ds' / 'masks' / 'train' / 's01' / '00' / '02.png'}: size mismatch" in text
    assert all(it["blur"].shape == (3, 32, 32) for it in items)


def test_authors_bapc_gate_depends_on_the_stored_mask_values(tmp_path):
    """Issue 12 item 12: off by default; with 0.05 a 2 % mask stored 0/255 passes and one stored 0/1
    does not, as ``blur_mask.sum() / blur_mask.size > 0.05`` on the raw mask does."""
    import cv2

    from lbag.config import load_config

    rng = np.random.default_rng(0)
    for scale in (1, 255):
        root = tmp_path / f"m{scale}"
        for i in range(2):
            img = rng.random((64, 96, 3))
            write_image(root / "dataset" / "train" / "s01" / "00" / f"{i:02d}_sharp.png", img)
            write_image(root / "dataset" / "train" / "s01" / "00" / f"{i:02d}_blur.png", img)
            m = np.zeros((64, 96), np.uint8)
            m[30:42, 50:62] = scale  # 2.3 % of the frame
            (root / "masks" / "train" / "s01" / "00").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "masks" / "train" / "s01" / "00" / f"{i:02d}.png"), m)

    def centred(scale, gate):
        ds = TrainDataset(tmp_path / f"m{scale}", patch_size=16, bapc_prob=1.0, cache_dir=tmp_path / "c",
                          bapc_min_mask_mean=gate)
        hits = [bool(ds[i]["mask"][0, 8, 8]) for e in range(10) for i in (ds.set_epoch(e), 0, 1)[1:]]
        return sum(hits) / len(hits)

    assert centred(1, None) == centred(255, None) == 1.0
    assert centred(255, 0.05) == 1.0
    assert centred(1, 0.05) < 0.5
    assert load_config(overrides={"data": {"bapc_min_mask_mean": 0.05}}).data.bapc_min_mask_mean == 0.05
    assert load_config().data.bapc_min_mask_mean is None


def test_train_output_folder_that_is_a_file_is_one_line(data_root, tmp_path, capsys):
    import yaml

    from lbag.cli import main
    from lbag.config import config_to_dict

    taken = tmp_path / "run"
    taken.write_text("not a folder")
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump(config_to_dict(_cfg(data_root, taken))))
    assert main(["train", "-c", str(cfg_file)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"lbag train: error: {taken / 'checkpoints'}: cannot write (Not a directory)"
    assert taken.read_text() == "not a folder"
