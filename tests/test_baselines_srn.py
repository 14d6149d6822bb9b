"""SRN-DeblurNet colour model (lbag.models.srn): the official TF variables 1:1, the converter, TF's
'SAME' padding and legacy bilinear resize, odd sizes, portrait inputs, gradients."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lbag.models import CheckpointError, DeblurOutput, load_model, save_model
from lbag.models.srn import (
    INFO,
    MODELS,
    TFSameConv2d,
    resize_bilinear_tf1,
    srn_deblur,
    state_dict_from_tf,
    tf_variable_name,
)

from baseline_spec import DATA

VARIABLES = json.loads((DATA / "srn_deblur_color_variables.json").read_text())["models"]["color"]["variables"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny tensors gain nothing from threads, and on a busy machine OpenMP waits cost 20x.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return srn_deblur().eval()


def _tf_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {v["name"]: rng.standard_normal(v["shape"]).astype(np.float32) for v in VARIABLES}


def test_variables_names_order_shapes_and_count(model):
    sd = model.state_dict()
    assert [tf_variable_name(k) + ":0" for k in sd] == [v["name"] for v in VARIABLES]
    for (key, tensor), var in zip(sd.items(), VARIABLES):
        tf_shape = var["shape"]
        expected = [tf_shape[3], tf_shape[2], tf_shape[0], tf_shape[1]] if len(tf_shape) == 4 else tf_shape
        assert list(tensor.shape) == expected, key
    params = json.loads((DATA / "params.json").read_text())["srn_deblur_color"]["params"]
    assert sum(p.numel() for p in model.parameters()) == params == 6_881_251
    assert MODELS["srn_deblur"] is srn_deblur and INFO["srn_deblur"]["pad_multiple"] == 16


def test_converter_maps_hwio_kernels(model):
    arrays = _tf_arrays()
    arrays["g_net/enc1_1/weights/Adam"] = np.zeros(1, np.float32)  # optimizer slots and other scopes ignored
    arrays["global_step"] = np.zeros((), np.int64)
    sd = state_dict_from_tf(arrays)
    m = srn_deblur()
    m.load_state_dict(sd, strict=True)
    conv = arrays["g_net/enc2_1/weights:0"]  # [kh, kw, in, out]
    assert float(m.enc2_1.weight.detach()[5, 7, 1, 3]) == pytest.approx(float(conv[1, 3, 7, 5]))
    deconv = arrays["g_net/dec2_4/weights:0"]  # conv2d_transpose: [kh, kw, out, in]
    assert float(m.dec2_4.weight.detach()[9, 4, 2, 0]) == pytest.approx(float(deconv[2, 0, 4, 9]))
    assert torch.equal(m.dec1_0.bias.detach(), torch.from_numpy(arrays["g_net/dec1_0/biases:0"]))


def test_converter_errors_name_the_variable():
    arrays = _tf_arrays()
    del arrays["g_net/dec1_0/biases:0"]
    with pytest.raises(CheckpointError, match=r"ckpt: .*1 variables missing \['g_net/dec1_0/biases'\]"):
        state_dict_from_tf(arrays, source="ckpt")
    arrays = _tf_arrays()
    arrays["g_net/convLSTM/LSTM_conv/weights:0"] = np.zeros((3, 3, 256, 512), np.float32)  # the lstm model
    with pytest.raises(CheckpointError, match="unexpected.*convLSTM"):
        state_dict_from_tf(arrays)
    arrays = _tf_arrays()
    arrays["g_net/enc1_1/weights:0"] = np.zeros((5, 5, 2, 32), np.float32)  # the gray model's first conv
    with pytest.raises(CheckpointError, match=r"g_net/enc1_1/weights has shape \[5, 5, 2, 32\]"):
        state_dict_from_tf(arrays)


def test_npz_of_tf_variables_loads_and_safetensors_round_trip(tmp_path):
    arrays = _tf_arrays(1)
    np.savez(tmp_path / "srn_color.npz", **{k[:-2]: v for k, v in arrays.items()})
    m = load_model(tmp_path / "srn_color.npz")
    assert type(m).__name__ == "SRNDeblur" and not m.training
    save_model(m, tmp_path / "srn.safetensors")
    again = load_model(tmp_path / "srn.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), again.state_dict().values()))


def test_tf_same_padding_matches_tensorflow():
    torch.manual_seed(0)
    conv = TFSameConv2d(3, 4, 5, stride=2)
    for size in (16, 17):
        x = torch.rand(1, 3, size, size + 2)
        # TF 'SAME', stride 2, kernel 5: total padding 3 on even sizes (1 before, 2 after), 4 on odd.
        pads = {16: (1, 2), 17: (2, 2), 18: (1, 2), 19: (2, 2)}
        ph, pw = pads[size], pads[size + 2]
        ref = F.conv2d(F.pad(x, (*pw, *ph)), conv.weight, conv.bias, stride=2)
        assert torch.allclose(conv(x), ref) and conv(x).shape[-2] == -(-size // 2)


def test_resize_bilinear_tf1_legacy_semantics():
    x = torch.arange(2 * 8 * 6, dtype=torch.float32).reshape(1, 2, 8, 6)
    assert torch.equal(resize_bilinear_tf1(x, 8, 6), x)
    assert torch.equal(resize_bilinear_tf1(x, 4, 3), x[..., ::2, ::2])  # no pixel-centre offset
    up = resize_bilinear_tf1(x, 16, 12)
    assert torch.equal(up[..., ::2, ::2], x)
    assert torch.allclose(up[..., 1:-1:2, ::2], (x[..., :-1, :] + x[..., 1:, :]) / 2)
    assert torch.equal(up[..., -1, ::2], x[..., -1, :])  # clamped at the last row
    # A non-integer ratio against the TF formula written out in numpy: src = dst * in / out.
    a = np.random.default_rng(0).random((5, 7)).astype(np.float32)
    out_h, out_w = 3, 4
    ref = np.zeros((out_h, out_w), np.float32)
    for i in range(out_h):
        for j in range(out_w):
            sy, sx = i * np.float32(5 / 3), j * np.float32(7 / 4)
            y0, x0 = int(np.floor(sy)), int(np.floor(sx))
            y1, x1 = min(y0 + 1, 4), min(x0 + 1, 6)
            fy, fx = sy - y0, sx - x0
            top = a[y0, x0] + (a[y0, x1] - a[y0, x0]) * fx
            bottom = a[y1, x0] + (a[y1, x1] - a[y1, x0]) * fx
            ref[i, j] = top + (bottom - top) * fy
    got = resize_bilinear_tf1(torch.from_numpy(a)[None, None], out_h, out_w)[0, 0].numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_odd_sizes_coarse_to_fine_and_edge_padding(model):
    x = torch.rand(2, 3, 13, 21)
    with torch.no_grad():
        out = model(x)
        padded = model(F.pad(x, (0, 11, 0, 3), mode="replicate"))  # what the network does inside
    assert isinstance(out, DeblurOutput) and out.masks == [None, None, None]
    assert [tuple(i.shape[-2:]) for i in out.images] == [(4, 6), (7, 11), (13, 21)]
    assert all(torch.isfinite(i).all() for i in out.images)
    assert torch.allclose(out.images[-1], padded.images[-1][..., :13, :21], atol=1e-6)
    with torch.no_grad():
        tiny = model(torch.rand(1, 3, 5, 7))
    assert tuple(tiny.images[-1].shape) == (1, 3, 5, 7)


def test_portrait_images_run_transposed_as_the_official_test(model):
    x = torch.rand(1, 3, 32, 16)
    with torch.no_grad():
        portrait = model(x).images[-1]
        landscape = model(x.transpose(-2, -1)).images[-1]
    assert portrait.shape[-2:] == (32, 16)
    assert torch.allclose(portrait, landscape.transpose(-2, -1), atol=1e-6)


def test_coarsest_scale_sees_the_input_twice(model):
    seen = []
    hook = model.enc1_1.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    try:
        with torch.no_grad():
            model(torch.rand(1, 3, 16, 16))
    finally:
        hook.remove()
    assert [tuple(s.shape[-2:]) for s in seen] == [(4, 4), (8, 8), (16, 16)]
    assert torch.equal(seen[0][:, :3], seen[0][:, 3:])
    assert torch.equal(seen[1][:, :3], seen[2][:, :3][..., ::2, ::2])  # legacy resize: every 2nd pixel


def test_gradients_flow_to_every_parameter():
    torch.manual_seed(1)
    m = srn_deblur().train()
    out = m(torch.rand(1, 3, 9, 14))
    sum(img.square().mean() for img in out.images).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
               for p in m.parameters())
