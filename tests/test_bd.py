"""BD-rate and BD-PSNR on pairs of curves whose answer is known."""
import numpy as np
import pytest

from sgaplus.bd import bd_psnr, bd_rate

RATE = np.array([0.2, 0.4, 0.7, 1.1])
PSNR = np.array([27.0, 29.5, 31.6, 33.2])


def test_same_quality_at_ninety_percent_of_the_rate_is_minus_ten_percent():
    assert bd_rate(RATE, PSNR, 0.9 * RATE, PSNR) == pytest.approx(-10.0, abs=1e-9)
    assert bd_rate(0.9 * RATE, PSNR, RATE, PSNR) == pytest.approx(100 / 9, abs=1e-9)


def test_half_a_decibel_better_at_every_rate():
    assert bd_psnr(RATE, PSNR, RATE, PSNR + 0.5) == pytest.approx(0.5, abs=1e-9)
    assert bd_rate(RATE, PSNR, RATE, PSNR) == pytest.approx(0.0, abs=1e-9)


def test_partial_overlap_uses_the_common_interval():
    # the test curve covers only the upper half; where it overlaps it is the same curve shifted by 0.3 dB
    assert bd_psnr(RATE, PSNR, RATE[1:], PSNR[1:] + 0.3) == pytest.approx(0.3, abs=0.05)


def test_disjoint_or_degenerate_curves_are_refused():
    with pytest.raises(ValueError, match="do not overlap"):
        bd_psnr(RATE, PSNR, RATE * 10, PSNR)
    with pytest.raises(ValueError, match="at least two points"):
        bd_rate(RATE[:1], PSNR[:1], RATE, PSNR)


def test_bd_rate_refuses_a_curve_whose_quality_falls_as_rate_rises():
    bent = PSNR.copy()
    bent[1] = 26.5  # below the first point although the rate is higher
    with pytest.raises(ValueError, match="does not rise with its rate"):
        bd_rate(RATE, bent, RATE, PSNR)
    assert bd_psnr(RATE, bent, RATE, PSNR) > 0  # PSNR against rate is still a function
