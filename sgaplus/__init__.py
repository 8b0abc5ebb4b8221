"""sgaplus: fused SGA+ rounding for latent refinement in neural image compression."""
from .module import SGARound
from .ops.rounding import RoundingConfig, sga_round
from .refine import LatentRefiner
from .schedule import TemperatureSchedule

__all__ = ["LatentRefiner", "RoundingConfig", "SGARound", "TemperatureSchedule", "sga_round"]
__version__ = "0.2.0"
