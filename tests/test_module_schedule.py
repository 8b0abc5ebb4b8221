"""SGARound (the op as a module) and TemperatureSchedule."""
import math

import pytest
import torch

import sgaplus


def test_module_matches_function_and_tau_is_settable():
    module = sgaplus.SGARound("linear", classes=3, r=0.9, n=2.0)
    module.tau = 0.3
    y = torch.randn(10, 10) * 2
    torch.testing.assert_close(module(y, generator=torch.Generator().manual_seed(1)),
                               sgaplus.sga_round(y, 0.3, "linear", 3, r=0.9, n=2.0,
                                                 generator=torch.Generator().manual_seed(1)))
    assert "method='linear', classes=3, tau=0.3, hard=False, r=0.9, n=2.0" in repr(module)
    module.hard = True
    out = module(y)
    assert torch.equal(out, out.round())
    with pytest.raises(ValueError, match="tau must be finite and > 0"):
        module.tau = 0.0


def test_module_rejects_bad_parameters_when_built():
    with pytest.raises(ValueError, match="valid methods"):
        sgaplus.SGARound("atanh", classes=3)


def test_schedule_follows_spec():
    schedule = sgaplus.TemperatureSchedule(rate=1e-3, tau_max=0.5, tau_min=0.2)
    assert schedule(0) == 0.5
    assert schedule(1000) == pytest.approx(math.exp(-1.0))
    assert schedule(10_000) == 0.2
    assert sgaplus.TemperatureSchedule()(2000) == pytest.approx(math.exp(-2.0))


@pytest.mark.parametrize("kwargs,message", [
    (dict(rate=-1.0), "rate must be a finite number > 0"), (dict(rate=math.nan), "rate must be a finite number"),
    (dict(tau_max=0.0), "tau_max must be a finite number > 0"), (dict(tau_min=math.inf), "tau_min must be a finite"),
    (dict(tau_min=2.0), r"tau_min \(2.0\) must not exceed tau_max"),
])
def test_schedule_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sgaplus.TemperatureSchedule(**kwargs)


def test_constant_temperature_is_allowed():
    assert sgaplus.TemperatureSchedule(rate=0.0, tau_max=0.5)(1000) == 0.5
