"""lbag.pixels: each rounding / scaling convention pinned on hand-chosen values."""

import numpy as np
import pytest
import torch

from lbag.pixels import hwc_to_chw, to_float01, to_float64, to_uint, to_uint8_exact

# float32(0.5 / 255): its float32 product with 255 rounds to exactly 0.5 (a tie, rounded to even: 0),
# while the exact product 0.50000003 rounds to 1.
F32_TIE = np.float32(0.5 / 255)


def test_to_float01_is_float32_times_float32_reciprocal():
    out = to_float01(np.array([0, 3, 51, 255], np.uint8))
    assert out.dtype == np.float32
    assert out[0] == 0 and out[3] == 1.0
    # 3 * float32(1/255) lands one float32 step above the correctly rounded 3/255 (0.0117647061...).
    assert out[1] == np.float32(0.011764707043766975) and out[1] > np.float32(3 / 255)
    assert out[2] == np.float32(0.20000001788139343)
    u16 = to_float01(np.array([0, 65535], np.uint16))
    assert u16.tolist() == [0.0, 1.0]
    f = np.array([-0.25, 1.5], np.float32)
    assert to_float01(f) is f  # float32 passes through, unclipped
    assert to_float01(np.array([True, False])).tolist() == [1.0, 0.0]


def test_to_float64_divides_exactly():
    # 51 / 255 and 13107 / 65535 are exactly 1/5: the correctly rounded result is the literal 0.2.
    assert to_float64(np.array([51], np.uint8))[0] == 0.2
    assert to_float64(np.array([13107], np.uint16))[0] == 0.2
    assert to_float64(np.array([3], np.uint8))[0] == 3 / 255
    assert to_float64(np.array([-0.5, 2.0], np.float32)).tolist() == [-0.5, 2.0]
    with pytest.raises(TypeError, match="pred: unsupported numpy dtype int32"):
        to_float64(np.zeros(2, np.int32), "pred")


def test_to_uint_rounds_half_to_even_in_the_input_precision():
    x = np.array([-0.5, 0.0, F32_TIE, 0.5, 1.0, 2.0], np.float32)
    # 0.5 * 255 = 127.5 -> 128 (even); the float32 tie -> 0 (floor(x + 0.5) would give 1)
    assert to_uint(x).tolist() == [0, 0, 0, 128, 255, 255]
    assert to_uint(x).dtype == np.uint8
    # float64 input computes in float64: the same value is above the tie there
    assert to_uint(x.astype(np.float64))[2] == 1
    assert to_uint(np.array([0.5, 1.0, -1.0]), bits=16).tolist() == [32768, 65535, 0]
    assert to_uint(np.array([0.5, 1.0]), bits=16).dtype == np.uint16


def test_to_uint_integer_and_bool_inputs():
    u8 = np.array([0, 7, 255], np.uint8)
    assert to_uint(u8) is u8
    # uint16 -> uint8: 128/65535*255 = 0.498 -> 0, 129 -> 0.502 -> 1, 32767 -> 127.498, 32768 -> 127.502
    assert to_uint(np.array([0, 128, 129, 257, 32767, 32768, 65535], np.uint16)).tolist() == \
        [0, 0, 1, 1, 127, 128, 255]
    assert to_uint(np.array([0, 1, 255], np.uint8), bits=16).tolist() == [0, 257, 65535]
    assert to_uint(np.array([True, False])).tolist() == [255, 0]
    assert to_uint(np.array([True, False]), bits=16).tolist() == [65535, 0]


def test_to_uint8_exact_uses_the_exact_product_and_reports_nan():
    x = np.array([-1.0, F32_TIE, 0.5, 2.0], np.float32)
    u8, nan = to_uint8_exact(x)
    assert u8.tolist() == [0, 1, 128, 255] and u8.dtype == np.uint8 and nan is False
    out = np.full(3, 9, np.uint8)
    got, nan = to_uint8_exact(np.array([np.nan, 0.2, 1.0]), out=out, scratch=np.empty(3))
    assert got is out and out.tolist() == [0, 51, 255] and nan is True


def test_hwc_to_chw():
    img = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    t = hwc_to_chw(img)
    assert isinstance(t, torch.Tensor) and t.shape == (4, 2, 3) and t.dtype == torch.float32
    assert t.is_contiguous()
    assert t[3, 1, 2].item() == img[1, 2, 3]
    g = hwc_to_chw(np.ones((5, 6), np.float32))
    assert g.shape == (1, 5, 6) and g.dtype == torch.float32
