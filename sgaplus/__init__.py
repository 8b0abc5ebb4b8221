"""sgaplus: fused SGA+ rounding for latent refinement in neural image compression."""
from .codecs.loading import codec_for
from .module import SGARound
from .ops.rounding import RoundingConfig, sga_round
from .refine import LatentRefiner
from .schedule import HoldDecaySchedule, TemperatureSchedule, budget_schedule, schedule_preset
from .stopping import EarlyStopping

__all__ = ["EarlyStopping", "HoldDecaySchedule", "LatentRefiner", "RoundingConfig", "SGARound", "TemperatureSchedule",
           "budget_schedule", "codec_for", "sga_round", "schedule_preset"]
__version__ = "0.4.0"
