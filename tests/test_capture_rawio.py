"""RAW input: DNG round trip through rawpy, Bayer arrays, pattern checks."""

import numpy as np
import pytest
import tifffile

from lbag.capture.rawio import BAYER_PATTERNS, RawFormatError, channel_index_map, mosaic, read_raw, write_dng


@pytest.mark.parametrize("pattern", BAYER_PATTERNS)
def test_dng_round_trip_through_rawpy(tmp_path, pattern):
    rng = np.random.default_rng(0)
    dn = rng.integers(64, 4095, (96, 128)).astype(np.uint16)
    path = tmp_path / "frame.dng"
    write_dng(path, dn, pattern, black_level=64, white_level=4095)
    frame = read_raw(path)  # rawpy / LibRaw decodes it
    assert frame.pattern == pattern
    assert frame.black_level == 64 and frame.white_level == 4095
    assert frame.cfa.dtype == np.float32 and frame.cfa.shape == (96, 128)
    np.testing.assert_allclose(frame.cfa * (4095 - 64) + 64, dn, atol=1e-3)


def test_dng_pattern_mismatch_is_an_error(tmp_path):
    path = tmp_path / "frame.dng"
    write_dng(path, np.full((64, 64), 500, np.uint16), "RGGB")
    with pytest.raises(RawFormatError, match="pattern is RGGB, but BGGR"):
        read_raw(path, pattern="BGGR")


def test_npy_and_tiff_arrays(tmp_path):
    dn = np.arange(96 * 128, dtype=np.uint16).reshape(96, 128) % 1000 + 100
    np.save(tmp_path / "a.npy", dn)
    tifffile.imwrite(tmp_path / "a.tiff", dn)
    for name in ("a.npy", "a.tiff"):
        f = read_raw(tmp_path / name, pattern="GRBG", black_level=100, white_level=1100)
        assert f.pattern == "GRBG"
        np.testing.assert_allclose(f.cfa, (dn - 100.0) / 1000.0, atol=1e-6)
    # Integer arrays default to [0, dtype max].
    f = read_raw(tmp_path / "a.npy")
    assert f.white_level == 65535 and f.pattern == "RGGB"


def test_bad_files_name_the_file(tmp_path):
    (tmp_path / "broken.dng").write_bytes(b"not a raw file")
    with pytest.raises(RawFormatError, match="broken.dng"):
        read_raw(tmp_path / "broken.dng")
    np.save(tmp_path / "rgb.npy", np.zeros((4, 4, 3)))
    with pytest.raises(RawFormatError, match="must be 2-D"):
        read_raw(tmp_path / "rgb.npy")
    with pytest.raises(RawFormatError, match="no such file"):
        read_raw(tmp_path / "missing.dng")
    with pytest.raises(ValueError, match="unknown Bayer pattern"):
        read_raw(tmp_path / "rgb.npy", pattern="RGBG")


def test_mosaic_samples_the_right_channel():
    rgb = np.stack([np.full((4, 6), v) for v in (1.0, 2.0, 3.0)], axis=-1)
    assert mosaic(rgb, "RGGB")[:2, :2].tolist() == [[1, 2], [2, 3]]
    assert mosaic(rgb, "GBRG")[:2, :2].tolist() == [[2, 3], [1, 2]]
    idx = channel_index_map((5, 7), "BGGR")
    assert idx.shape == (5, 7) and idx[0, 0] == 2 and idx[1, 1] == 0
