"""Inference paths compute the same function as the float32 eager reference."""

import pytest
import torch

from lbag.accel import auto_path, cpu_has_bf16, prepare
from lbag.models import lbag


def psnr(a, b):
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


@pytest.fixture(scope="module")
def model_and_input():
    torch.manual_seed(0)
    model = lbag(num_res=2, width=8)
    return model, torch.rand(2, 3, 29, 46)


def test_channels_last_matches_eager(model_and_input):
    model, x = model_and_input
    ref = prepare(model, "cpu", "eager")(x)
    out = prepare(model, "cpu", "channels_last")(x)
    for a, b in zip(ref.images + ref.masks, out.images + out.masks):
        assert a.shape == b.shape and b.dtype == torch.float32
        assert (a - b).abs().max() < 1e-4


@pytest.mark.skipif(not cpu_has_bf16(), reason="CPU has no native bfloat16")
def test_bf16_within_reduced_precision_target(model_and_input):
    model, x = model_and_input
    ref = prepare(model, "cpu", "eager")(x).images[-1]
    out = prepare(model, "cpu", "bf16")(x).images[-1]
    assert out.dtype == torch.float32
    assert psnr(ref.clamp(0, 1), out.clamp(0, 1)) > 50


def _cpuinfo(flags):
    import io

    text = f"processor\t: 0\nmodel name\t: test CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n"
    return lambda *a, **k: io.StringIO(text)


@pytest.mark.parametrize("flags,native", [("fpu sse2 avx2 avx512f avx512bw", False),
                                          ("fpu sse2 avx512f avx512_bf16 avx512_vnni", True),
                                          ("fpu amx_tile amx_bf16 amx_int8", True), ("fpu sse2", False)])
def test_auto_and_errors(model_and_input, monkeypatch, flags, native):
    import lbag.accel as A

    model, _ = model_and_input
    monkeypatch.setattr(A, "open", _cpuinfo(flags), raising=False)  # what /proc/cpuinfo says
    assert cpu_has_bf16() is native
    assert auto_path("cpu") == ("bf16" if native else "channels_last")
    with pytest.raises(ValueError, match="unknown inference path 'fastest'"):
        prepare(model, "cpu", "fastest")
    if not native:
        with pytest.raises(ValueError, match="bf16"):
            prepare(model, "cpu", "bf16")


@pytest.mark.slow
def test_compile_path_leaves_the_inductor_settings_alone(model_and_input):
    import torch._inductor.config as inductor_config

    model, _ = model_and_input
    before = inductor_config.freezing
    runner = prepare(model, "cpu", "compile")  # compiles lazily: nothing runs here
    assert runner.description == "compile on cpu" and inductor_config.freezing == before
    prepare(model, "cpu", "eager")


def test_eager_after_channels_last_is_the_reference_again(model_and_input):
    model, x = model_and_input
    ref = prepare(model, "cpu", "eager")(x).images[-1]
    prepare(model, "cpu", "channels_last")
    runner = prepare(model, "cpu", "eager")
    assert all(p.is_contiguous() for p in model.parameters())
    assert torch.equal(runner(x).images[-1], ref)
    assert runner.description == "eager on cpu"


def test_path_plugs_into_tiled_inference(model_and_input):
    from lbag.infer import deblur_tensor

    model, x = model_and_input
    plain = deblur_tensor(model, x, tile=24, overlap=8, forward=prepare(model, "cpu", "eager"))
    tiled = deblur_tensor(model, x, tile=24, overlap=8, forward=prepare(model, "cpu", "channels_last"))
    assert tiled.tiles > 1 and (tiled.image - plain.image).abs().max() < 1e-4


def test_resolve_device():
    from lbag.accel import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device is usable"):
            resolve_device("cuda:0")
