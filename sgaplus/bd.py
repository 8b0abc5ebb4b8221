"""Bjøntegaard delta metrics (VCEG-M33): BD-rate and BD-PSNR between two RD curves.

Each curve is fitted with a cubic polynomial (log10 rate against PSNR for BD-rate, PSNR against
log10 rate for BD-PSNR), as in the original proposal; the difference of the fits is averaged over
the interval both curves cover. With four points per curve the cubic interpolates them exactly.
"""
import numpy as np


def _average_gap(x_ref, y_ref, x_test, y_test):
    """Mean of (fit_test - fit_ref) over the overlap of the x ranges, cubic fits (or lower with < 4 points)."""
    x_ref, y_ref, x_test, y_test = map(np.asarray, (x_ref, y_ref, x_test, y_test))
    if min(len(x_ref), len(x_test)) < 2:
        raise ValueError("each RD curve needs at least two points")
    degree = min(3, len(x_ref) - 1, len(x_test) - 1)
    fit_ref, fit_test = np.polyfit(x_ref, y_ref, degree), np.polyfit(x_test, y_test, degree)
    low, high = max(x_ref.min(), x_test.min()), min(x_ref.max(), x_test.max())
    if high <= low:
        raise ValueError("the RD curves do not overlap")
    int_ref, int_test = np.polyint(fit_ref), np.polyint(fit_test)
    area = (np.polyval(int_test, high) - np.polyval(int_test, low)) - \
        (np.polyval(int_ref, high) - np.polyval(int_ref, low))
    return area / (high - low)


def _check_psnr_rises_with_rate(rate, psnr, name):
    order = np.argsort(rate)
    if np.any(np.diff(np.asarray(psnr)[order]) <= 0):
        raise ValueError(f"BD-rate is undefined: the {name} curve's PSNR does not rise with its rate "
                         f"(rate {np.round(np.asarray(rate)[order], 4).tolist()}, "
                         f"PSNR {np.round(np.asarray(psnr)[order], 3).tolist()})")


def bd_rate(rate_ref, psnr_ref, rate_test, psnr_test):
    """Average rate difference of test vs reference at equal quality, in percent (negative: test saves bits).

    Rate is fitted as a function of PSNR, so each curve's PSNR must rise with its rate (ValueError otherwise).
    """
    _check_psnr_rises_with_rate(rate_ref, psnr_ref, "reference")
    _check_psnr_rises_with_rate(rate_test, psnr_test, "test")
    gap = _average_gap(psnr_ref, np.log10(rate_ref), psnr_test, np.log10(rate_test))
    return (10 ** gap - 1) * 100


def bd_psnr(rate_ref, psnr_ref, rate_test, psnr_test):
    """Average PSNR difference of test vs reference at equal rate, in dB (positive: test is better)."""
    return _average_gap(np.log10(rate_ref), psnr_ref, np.log10(rate_test), psnr_test)
