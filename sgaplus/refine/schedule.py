"""Temperature schedules for refinement loops (docs/refinement.md, "Temperature").

- TemperatureSchedule: SGA+'s tau(t) = min(max(exp(-rate t), tau_min), tau_max).
- HoldDecaySchedule: tau_max for `hold` steps, then tau_max exp(-rate (t - hold)), clipped to
  [tau_min, tau_max] (the original SGA code's schedule).
- budget_schedule(iterations, ...): a HoldDecaySchedule that reaches tau_final at the last step,
  whatever the budget (the default schedule never cools in a short run: after 500 steps it is at 0.61).
- schedule_preset(name, iterations): the schedules the published methods were run with.
"""
import math
from dataclasses import dataclass

from ..ops._common import check_positive

SGA_PLUS_FINAL_TAU = math.exp(-2.0)  # where SGA+'s default schedule ends after its 2000 steps
BUDGET_HOLD = 0.2  # the budget preset's hold: better than none at 500 steps (docs/results.md, comparison 8)


@dataclass(frozen=True)
class TemperatureSchedule:
    """tau(t) = min(max(exp(-rate * t), tau_min), tau_max).

    SGA+ uses rate=1e-3, tau_max=1.0. tau_min is the lower clip of the published SGA code (1e-8).
    """
    rate: float = 1e-3
    tau_max: float = 1.0
    tau_min: float = 1e-8

    def __post_init__(self):
        if self.rate != 0:
            check_positive("rate", self.rate)  # or 0: a constant temperature
        check_positive("tau_max", self.tau_max)
        check_positive("tau_min", self.tau_min)
        if self.tau_min > self.tau_max:
            raise ValueError(f"tau_min ({self.tau_min}) must not exceed tau_max ({self.tau_max})")

    def __call__(self, step):
        return min(max(math.exp(-self.rate * step), self.tau_min), self.tau_max)


@dataclass(frozen=True)
class HoldDecaySchedule:
    """tau(t) = min(max(tau_max * exp(-rate * (t - hold)), tau_min), tau_max): tau_max for the first `hold`
    steps, then an exponential decay."""
    tau_max: float = 0.5
    rate: float = 1e-3
    hold: int = 700
    tau_min: float = 1e-8

    def __post_init__(self):
        check_positive("tau_max", self.tau_max)
        check_positive("tau_min", self.tau_min)
        if self.rate != 0:
            check_positive("rate", self.rate)
        if isinstance(self.hold, bool) or not isinstance(self.hold, int) or self.hold < 0:
            raise ValueError(f"hold must be an integer >= 0, got {self.hold!r}")
        if self.tau_min > self.tau_max:
            raise ValueError(f"tau_min ({self.tau_min}) must not exceed tau_max ({self.tau_max})")

    def __call__(self, step):
        return min(max(self.tau_max * math.exp(-self.rate * (step - self.hold)), self.tau_min), self.tau_max)


def budget_schedule(iterations, tau_max=1.0, tau_final=SGA_PLUS_FINAL_TAU, hold_fraction=0.0):
    """A schedule for a budget of `iterations` steps: tau_max for the first hold_fraction of them, then an
    exponential decay that reaches tau_final at the last step (step iterations - 1)."""
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    check_positive("tau_max", tau_max)
    check_positive("tau_final", tau_final)
    if tau_final > tau_max:
        raise ValueError(f"tau_final ({tau_final}) must not exceed tau_max ({tau_max})")
    if not 0 <= hold_fraction < 1:
        raise ValueError(f"hold_fraction must lie in [0, 1), got {hold_fraction!r}")
    hold = int(hold_fraction * iterations)
    decay_steps = max(iterations - 1 - hold, 1)
    return HoldDecaySchedule(tau_max, math.log(tau_max / tau_final) / decay_steps, hold, min(1e-8, tau_final))


PRESETS = {
    "sga+": "SGA+ (Perugachi-Diaz et al.): exp(-1e-3 t), at most 1",
    "sga+-atanh": "the SGA+ authors' atanh (SGA) baseline: exp(-4e-3 t), at most 0.2",
    "yang2020": "the original SGA code (Yang et al.): 0.5 for 700 steps, then 0.5 exp(-1e-3 (t - 700))",
    "budget": "tau_max for the first 20% of the budget, then down to exp(-2) (SGA+'s temperature after 2000 "
              "steps) at the last step",
}


def schedule_preset(name, iterations):
    """The schedule a name in PRESETS stands for, for a run of `iterations` steps."""
    if name == "sga+":
        return TemperatureSchedule(rate=1e-3, tau_max=1.0)
    if name == "sga+-atanh":
        return TemperatureSchedule(rate=4e-3, tau_max=0.2)
    if name == "yang2020":
        return HoldDecaySchedule(tau_max=0.5, rate=1e-3, hold=700)
    if name == "budget":
        return budget_schedule(iterations, hold_fraction=BUDGET_HOLD)
    raise ValueError(f"unknown schedule {name!r}; presets: {', '.join(PRESETS)}")
