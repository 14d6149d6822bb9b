"""Exposure planning (paper Eq. 2) and `lbag capture plan`."""

import json

import pytest

from lbag.capture.exposure import plan_exposure
from lbag.cli import main


def test_plan_matches_hand_computed_eq2():
    # t_S = c n d / (l' v) = 3.45e-6 * 4 * 5 / (0.016 * 1.5) = 2.875 ms; t_L = t_S / 0.125 = 23 ms.
    p = plan_exposure(3.45, 4, 5, 16, 1.5, 0.125)
    assert p.t_short_s == pytest.approx(2.875e-3, rel=1e-12)
    assert p.t_long_s == pytest.approx(23e-3, rel=1e-12)
    assert p.long_blur_px == pytest.approx(32.0)
    assert p.t_short_s / p.t_long_s == pytest.approx(p.tau)
    # The object crosses n pixels in t_S by construction.
    assert p.image_speed_px_s * p.t_short_s == pytest.approx(4.0)
    assert p.warnings == ()


def test_plan_warns_outside_reloblur_ranges():
    p = plan_exposure(3.45, 10, 5, 16, 1.5, 0.1)
    assert any("<= 6 px" in w for w in p.warnings)
    assert any("15-70 px" in w for w in p.warnings)


@pytest.mark.parametrize("kwargs, needle", [
    (dict(pixel_pitch_um=3450), "pixel_pitch_um"),
    (dict(nd_transmittance=8), "nd_transmittance"),
    (dict(nd_transmittance=0), "nd_transmittance"),
    (dict(speed_mps=-1), "speed_mps"),
    (dict(blur_px=float("nan")), "blur_px"),
    (dict(distance_m=0.01, image_distance_mm=50), "shorter than the object distance"),
])
def test_plan_rejects_bad_values(kwargs, needle):
    base = dict(pixel_pitch_um=3.45, blur_px=4, distance_m=5, image_distance_mm=16, speed_mps=1.5,
                nd_transmittance=0.125)
    base.update(kwargs)
    with pytest.raises(ValueError, match=needle):
        plan_exposure(**base)


def test_cli_plan_json(capsys):
    rc = main(["capture", "plan", "--pixel-pitch-um", "3.45", "--blur-px", "4", "--distance-m", "5",
               "--image-distance-mm", "16", "--speed-mps", "1.5", "--nd-transmittance", "0.125", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"t_short_s", "t_long_s", "tau", "long_blur_px"}
    assert out["t_long_s"] == pytest.approx(0.023)


def test_cli_plan_bad_unit_is_one_line_error(capsys):
    rc = main(["capture", "plan", "--pixel-pitch-um", "3.45", "--blur-px", "4", "--distance-m", "5",
               "--image-distance-mm", "16", "--speed-mps", "1.5", "--nd-transmittance", "16"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nd_transmittance" in err
