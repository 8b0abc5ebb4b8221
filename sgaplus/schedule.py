"""Temperature schedules for refinement loops."""
import math
from dataclasses import dataclass

from .ops._common import check_positive


@dataclass(frozen=True)
class TemperatureSchedule:
    """tau(t) = min(max(exp(-rate * t), tau_min), tau_max) (docs/refinement.md).

    SGA+ uses rate=1e-3, tau_max=1.0; the original SGA paper used tau_max=0.5. tau_min is the
    lower clip of the published SGA code (1e-8).
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
