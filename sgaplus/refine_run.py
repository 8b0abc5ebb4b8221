"""`sgaplus refine`'s work: a RefineJob (the images, the output folder, the model choice and the refinement
settings) refined into a folder of files and metrics; resumable, and shared among torchrun's processes (each rank
takes every world-th batch, rank 0 reports)."""
import sys
from dataclasses import dataclass
from pathlib import Path

from . import distributed, pipeline
from .codecs import vbr
from .errors import INTERRUPTED, UsageError
from .files.images import read_rgb
from .files.model_choice import ModelChoice
from .pipeline import Outputs, check_size, warn_other_metric
from .refine import memory
from .refine.refiner import LatentRefiner
from .refine.settings import RefinementSettings, checked_device

TARGET_MISSED = 3  # refine wrote every file, but some missed the target size asked for


@dataclass(frozen=True)
class RefineJob:
    images: tuple  # the input images' paths
    outputs: Outputs
    model: ModelChoice
    settings: RefinementSettings


def run_record(model, settings):
    """What a run's settings file records, and --resume compares."""
    return {**model.record(), **settings.record()}


def prepare(job):
    """(sources, out, settings resolved, their record, done rows) of a refine job, every option and input checked
    before any work."""
    sources = [Path(p) for p in job.images]
    stems = [p.stem for p in sources]
    if len(set(stems)) != len(stems):
        raise UsageError("two input images share a file name; refine them into separate --out folders")
    out = job.outputs.folder()
    settings = job.settings.resolved(pipeline.resumed_preset(out / "metrics.json", job.outputs.resume))
    job.model.checked(lmbda_needed=settings.objective.lmbda is None)
    pipeline.refuse_replacing_inputs(out, sources)
    record, done = run_record(job.model, settings), {}  # the settings asked for, as --resume compares them
    if job.outputs.resume:
        done = pipeline.finished_rows(out, sources, record)
    else:
        job.outputs.refuse_overwrite(pipeline.output_paths(out, stems) + pipeline.metrics_paths(out))
    return sources, out, settings, record, done


@dataclass
class _Run:
    """A refine run under way: where it writes, its codec and refiner, its settings and their record."""
    out: Path
    codec: object
    refiner: LatentRefiner
    settings: RefinementSettings
    device: str
    record: dict
    order: dict  # {image path: its index among the inputs}
    world: int


def run(job):
    """Refine, write outputs; the exit status."""
    sources, out, settings, record, done = prepare(job)
    images = [(str(p), read_rgb(p)) for p in sources if p.stem not in done]  # every input checked before any work
    rank, world, device = distributed.setup(checked_device(settings.speed.device))
    codec = starting_codec(job.model, settings, images, device)
    settings = settings.for_codec(codec).for_pixels([x.shape[-2] * x.shape[-1] for _, x in images])
    for name, x in images:  # before any work
        check_size(settings.objective.metric, name, x)
    warn_other_metric(settings, codec)
    refiner = LatentRefiner(codec, settings, progress=True)
    batch_size = settings.speed.batch_size
    limits = memory.plan(refiner, sorted({tuple(x.shape[-2:]) for _, x in images}), batch_size, device)
    limits = distributed.smallest(limits, world)  # every rank cuts the same batches, whatever its free memory
    batches = pipeline.make_batches(images, batch_size, limits)
    out.mkdir(parents=True, exist_ok=True)
    order = {str(p): i for i, p in enumerate(sources)}
    rows = [(order[str(p)], done[p.stem]) for p in sources if p.stem in done]
    state = _Run(out, codec, refiner, settings, device, record, order, world)
    try:
        refine_batches(state, batches[rank::world], rows)
    except KeyboardInterrupt:
        print(f"sgaplus: interrupted: {len(rows)} of {len(sources)} images finished (kept in {out}); "
              f"run the same command with --resume to refine the rest", file=sys.stderr)
        return INTERRUPTED
    rows = distributed.gather(rows, world)
    distributed.finish(world)
    return report(state, rows, len(done)) if rank == 0 else 0


def refine_batches(state, batches, rows):
    """Refine and write each batch into rows [(input index, row)]; with one process, metrics.json after each (what
    is finished is on disk for --resume)."""
    for batch in batches:
        target = target_file_bpp(state.settings, batch[0][2].shape[-2:])
        for _, row, file in pipeline.refine_batch(batch, state.codec, state.refiner, state.device,
                                                  state.settings.rounding.seed, target):
            pipeline.report_target(row, target)
            pipeline.write_image_outputs(state.out, row, file)
            rows.append((state.order[row["image"]], row))
            if state.world == 1:
                pipeline.write_metrics(state.out, pipeline.in_order(rows), state.codec, state.refiner, state.record,
                                       complete=False)


def report(state, rows, kept):
    """metrics.json complete, the table and a summary; the exit status (TARGET_MISSED when a file missed its
    target size)."""
    rows = pipeline.in_order(rows)
    pipeline.write_metrics(state.out, rows, state.codec, state.refiner, state.record, complete=True)
    print(pipeline.table(rows))
    skipped = f", {kept} kept from the earlier run" if kept else ""
    print(f"wrote {len(rows) - kept} bitstreams, reconstructions and metrics to {state.out}{skipped}"
          + (f" ({state.world} processes)" if state.world > 1 else ""))
    missed = pipeline.missed_targets(rows)
    if missed:
        print(f"sgaplus: {missed} (exit status {TARGET_MISSED})", file=sys.stderr)
        return TARGET_MISSED
    return 0


def target_file_bpp(settings, size):
    """The file bpp the settings ask for at an image size (height, width), or None."""
    budget = settings.budget
    if budget.target_bytes is not None:
        return 8 * budget.target_bytes / (size[0] * size[1])
    return budget.target_bpp


def starting_codec(model, settings, images, device):
    """The codec the model options name; with a target size (or, for a variable-rate model, another lambda) and no
    quality or level given, the bundled quality or the level nearest to it."""
    metric, lmbda = settings.objective.metric or "mse", settings.objective.lmbda
    targeted = settings.budget.target_bpp is not None or settings.budget.target_bytes is not None
    quality = model.quality
    if targeted and not model.names_quality() and images:
        quality = pipeline.nearest_bundled_quality(images, lambda size: target_file_bpp(settings, size), device,
                                                   model.architecture)
        print(f"target size: starting from bundled model q{quality}, the nearest to the target", file=sys.stderr)
    codec = model.load(metric, lmbda, quality=quality).to(device)
    if codec.variable_rate and model.level is None and model.gain is None and images and (targeted or lmbda):
        level = (pipeline.nearest_level(images, lambda size: target_file_bpp(settings, size), device,
                                        lambda n: model.load(metric, quality=quality, level=n), codec.model.levels)
                 if targeted else vbr.nearest_level(codec.model, lmbda))
        print(f"{codec.model_id.rsplit(':', 1)[0]}: starting from level {level}, the nearest to the "
              f"{'target' if targeted else 'lambda'}", file=sys.stderr)
        codec = model.load(metric, quality=quality, level=level).to(device)
    return codec
