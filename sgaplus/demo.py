"""`sgaplus demo`: refine a crop of a held-out sample image with a bundled model and print base vs refined."""
import time
from dataclasses import dataclass

from . import pipeline
from .errors import UsageError
from .files.images import load_shipped_image
from .files.model_choice import ModelChoice
from .refine.refiner import LatentRefiner
from .refine.settings import RefinementSettings, checked_device


@dataclass(frozen=True)
class DemoJob:
    image: str  # a shipped sample image's name
    crop: int  # the side of the top-left square crop
    model: ModelChoice
    settings: RefinementSettings


def run(job):
    """Refine and print; the exit status."""
    image = load_shipped_image(job.image)
    height, width = image.shape[-2:]
    if job.crop > min(height, width):
        raise UsageError(f"--crop {job.crop} is larger than {job.image} ({width}x{height})")
    if job.settings.budget.target_bpp is not None or job.settings.budget.target_bytes is not None:
        raise UsageError("demo refines at the model's own lambda; a target size is refine's: sgaplus refine IMAGE "
                         "--target-bpp X")
    x = image[:, :job.crop, :job.crop].unsqueeze(0)
    settings = job.settings.resolved().for_pixels([job.crop ** 2])
    device = checked_device(settings.speed.device)
    codec = job.model.checked().load(settings.objective.metric or "mse").to(device)
    refiner = LatentRefiner(codec, settings)
    start = time.time()
    [(_, row, file)] = pipeline.refine_batch([(0, job.image, x)], codec, refiner, device, settings.rounding.seed)
    print(f"{job.image} {job.crop}x{job.crop} crop, model {codec.model_id} (lambda {refiner.lmbda}), "
          f"{refiner.method} for {refiner.iterations} iterations in {time.time() - start:.1f} s on {device}")
    print(pipeline.table([row]))
    gain = 100 * (row["base"]["loss"] - row["refined"]["loss"]) / row["base"]["loss"]
    print(f"true RD loss {row['base']['loss']:.4f} -> {row['refined']['loss']:.4f} ({gain:.1f}% lower); "
          f"bitstream {len(file.stream)} bytes, decoded: {row['file']['psnr']:.3f} dB, loss {row['file']['loss']:.4f}")
    return 0
