"""sgaplus: fused SGA+ rounding for latent refinement in neural image compression."""
from .codecs.model_calls import ModelCalls
from .errors import ModelError, SgaplusError, UsageError
from .files import bitstream
from .files.images import load_shipped_image, read_rgb, write_png
from .files.loading import codec_for, load_codec, load_model_class
from .integration.patch import patch
from .ops.module import SGARound
from .ops.rounding import RoundingConfig, sga_round
from .refine.distortion import Distortion
from .refine.refiner import LatentRefiner
from .refine.schedule import HoldDecaySchedule, TemperatureSchedule, budget_schedule, schedule_preset
from .refine.settings import RefinementSettings
from .refine.stopping import EarlyStopping
from .refine.target import RateTarget

# the public face: what the README and docs use, importable from sgaplus itself (tests/test_public_api.py)
__all__ = ["Distortion", "EarlyStopping", "HoldDecaySchedule", "LatentRefiner", "ModelCalls", "ModelError",
           "RateTarget", "RefinementSettings", "RoundingConfig", "SGARound", "SgaplusError", "TemperatureSchedule",
           "UsageError",
           "bitstream", "budget_schedule", "codec_for", "load_codec", "load_model_class", "load_shipped_image",
           "patch", "read_rgb", "schedule_preset", "sga_round", "write_png"]
__version__ = "0.9.0"
