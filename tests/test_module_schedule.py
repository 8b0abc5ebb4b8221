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


def test_hold_decay_schedule_is_the_original_sga_code():
    schedule = sgaplus.HoldDecaySchedule(tau_max=0.5, rate=1e-3, hold=700)
    assert schedule(0) == schedule(700) == 0.5
    assert schedule(1700) == pytest.approx(0.5 * math.exp(-1.0))
    assert sgaplus.schedule_preset("yang2020", 2000)(1700) == schedule(1700)
    atanh = sgaplus.schedule_preset("sga+-atanh", 2000)
    assert atanh(0) == 0.2 and atanh(1000) == pytest.approx(math.exp(-4.0))


@pytest.mark.parametrize("iterations", [1, 2, 500, 2000])
@pytest.mark.parametrize("hold_fraction", [0.0, 0.35])
def test_budget_schedule_reaches_its_final_temperature_at_the_last_step(iterations, hold_fraction):
    schedule = sgaplus.budget_schedule(iterations, tau_max=0.8, tau_final=0.05, hold_fraction=hold_fraction)
    assert schedule(0) == 0.8
    if iterations > 2:
        assert schedule(iterations - 1) == pytest.approx(0.05)
        assert schedule(int(hold_fraction * iterations)) == pytest.approx(0.8)
    taus = [schedule(t) for t in range(iterations)]
    assert all(a >= b for a, b in zip(taus, taus[1:]))  # never heats up


@pytest.mark.parametrize("kwargs,message", [
    (dict(iterations=0), "iterations must be an integer >= 1"), (dict(iterations=10, tau_final=0.0), "tau_final"),
    (dict(iterations=10, tau_final=2.0), r"tau_final \(2.0\) must not exceed tau_max"),
    (dict(iterations=10, hold_fraction=1.0), "hold_fraction must lie in"),
])
def test_budget_schedule_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sgaplus.budget_schedule(**kwargs)


def test_presets_are_named_and_unknown_ones_refused():
    with pytest.raises(ValueError, match="unknown schedule 'fast'; presets: sga\\+, sga\\+-atanh, yang2020, budget"):
        sgaplus.schedule_preset("fast", 100)
    with pytest.raises(ValueError, match="hold must be an integer >= 0"):
        sgaplus.HoldDecaySchedule(hold=-1)


def test_plateau_tracker_stops_on_a_plateau_and_not_while_the_loss_falls():
    rule = sgaplus.EarlyStopping(patience=3, min_delta=0.01)
    falling = rule.tracker([1.0])
    assert not any(falling.plateaued(0, 1.0 * 0.98 ** k) for k in range(1, 50))  # 2% per check: never stops
    flat = rule.tracker([1.0])
    decisions = [flat.plateaued(0, loss) for loss in (0.9, 0.899, 0.898, 0.8975)]
    assert decisions == [False, False, False, True]  # a 10% gain, then three checks under 1%
    with pytest.raises(ValueError, match="patience must be an integer >= 1"):
        sgaplus.EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="min_delta is relative"):
        sgaplus.EarlyStopping(min_delta=1.5)
