"""sgaplus: fused SGA+ rounding for latent refinement in neural image compression."""
from .config import RoundingConfig
from .module import SGARound
from .op import sga_round
from .reference import sga_round_reference
from .refine import LatentRefiner
from .schedule import TemperatureSchedule

__all__ = ["LatentRefiner", "RoundingConfig", "SGARound", "TemperatureSchedule", "sga_round", "sga_round_reference"]
__version__ = "0.1.0"
