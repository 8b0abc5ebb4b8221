"""`sgaplus evaluate`: the RD curve of a set of images with and without refinement. For every rate point (a model
quality, level or checkpoint) and image, the unrefined and the refined file are written and decoded. The same-size
images of a rate point refine together, in the batches `refine` cuts (pipeline.make_batches, at most --batch-size
and what the memory plan lets fit); under torchrun, the (rate point, batch) units are shared among the ranks. The
finished pairs are kept as they finish (pairs.py), and the outputs are written once, from all of them (curves.py).
The rate points are points.py's."""
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from .. import distributed
from ..decoded_files import decoded_files, file_metrics
from ..errors import INTERRUPTED, SgaplusError, UsageError
from ..files.bitstream import encode
from ..files.images import read_rgb, write_atomic
from ..pipeline import Outputs, check_size, make_batches, resumed_preset, warn_other_metric
from ..refine import memory
from ..refine.refiner import LatentRefiner
from ..refine.settings import RefinementSettings, checked_device
from . import pairs
from .curves import table, write_curves
from .pairs import KINDS
from .points import RatePoint, RatePoints

OUTPUTS = ("base.json", "refined.json", "bd.json", "images.csv", "rd.png", pairs.MERGED)


@dataclass
class Evaluation:
    """What evaluate needs: images [(name, x)], rate points, make_refiner(codec) -> (base, refined) LatentRefiners,
    the output folder, the device, the run's settings (a resumed run must have the same), the model's name and the
    largest batch."""
    images: list
    points: list
    make_refiners: Callable
    out: Path
    device: str
    settings: dict
    name: str
    batch_size: int = 1


@dataclass
class Unit:
    """A piece of the work: a batch of same-size images [(index, name, x)] at one rate point, refined together."""
    point: RatePoint
    batch: list


def plan_work(evaluation, done, world):
    """({label: (codec, {kind: refiner})} of the rate points with pairs to run, the units in (point, batch) order);
    done: the (point, image) pairs finished. A point's batches are cut from all its images, then lose their finished
    pairs, so that a resumed run refines the batches an uninterrupted one does; the ranks agree on each size's batch
    (the smallest any device fits)."""
    prepared, units = {}, []
    sizes = sorted({tuple(x.shape[-2:]) for _, x in evaluation.images})
    for point in evaluation.points:
        if all((point.label, name) in done for name, _ in evaluation.images):
            continue
        codec = point.load().to(evaluation.device)
        refiners = dict(zip(KINDS, evaluation.make_refiners(codec)))
        limits = memory.plan(refiners["refined"], sizes, evaluation.batch_size, evaluation.device)
        prepared[point.label] = codec, refiners
        for batch in make_batches(evaluation.images, evaluation.batch_size, distributed.smallest(limits, world)):
            todo = [item for item in batch if (point.label, item[1]) not in done]
            units += [Unit(point, todo)] if todo else []
    return prepared, units


def code_files(codec, refiner, x, paths, device):
    """Refine (or not) and encode a batch x of same-size images, write their files, decode them: each image's
    figures are those of its decoded file (its encoding time: its share of the batch's refinement and encoding)."""
    start = time.perf_counter()
    result = refiner.refine(x.to(device))
    streams = encode(codec, result.y_hat, result.z_hat, x.shape[-2:])
    seconds = (time.perf_counter() - start) / len(streams)
    files = decoded_files(codec, streams, result.x_hat, [path.name for path in paths])
    figures = []
    for i, (path, file) in enumerate(zip(paths, files)):
        write_atomic(path, file.stream)
        figure = file_metrics(file, x[i:i + 1], refiner.distortion, result.lmbda[i])
        figures.append({**{key: figure[key] for key in ("bpp", "psnr", "ms_ssim", "loss")},
                        "encoding_time": seconds})
    return figures


def code_unit(evaluation, codec, refiners, unit):
    """The unrefined and the refined file of every image of a unit, written and decoded: a row per image."""
    label = unit.point.label
    rows = [{"point": label, "image": name, "height": x.shape[-2], "width": x.shape[-1]} for _, name, x in unit.batch]
    x = torch.cat([x for _, _, x in unit.batch])
    for kind in KINDS:
        files = [Path("bitstreams") / label / f"{Path(row['image']).stem}.{kind}.bin" for row in rows]
        (evaluation.out / files[0]).parent.mkdir(parents=True, exist_ok=True)
        figures = code_files(codec, refiners[kind], x, [evaluation.out / f for f in files], evaluation.device)
        for row, file, figure in zip(rows, files, figures):
            row[kind] = {"file": file.as_posix(), **figure}
    for row in rows:
        row["lmbda"] = refiners["refined"].lmbda
    return rows


def run_unit(evaluation, prepared, unit, rank, world):
    """code_unit; a failure names the unit (and the rank) in one line: the package's errors in their own message,
    anything else on stderr before its traceback."""
    try:
        return code_unit(evaluation, *prepared[unit.point.label], unit)
    except Exception as error:
        where = f"{unit.point.label} x {', '.join(name for _, name, _ in unit.batch)}"
        where = f"rank {rank} of {world} failed on {where}" if world > 1 else f"failed on {where}"
        if isinstance(error, SgaplusError):
            error.args = (f"{where}: {error}",)
            raise
        print(f"sgaplus: error: {where}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        raise


def in_order(evaluation, rows):
    """Rows in (rate point, image) order, whichever process finished them."""
    points = {point.label: i for i, point in enumerate(evaluation.points)}
    images = {name: i for i, (name, _) in enumerate(evaluation.images)}
    return sorted(rows, key=lambda row: (points[row["point"]], images[row["image"]]))


def evaluate(evaluation, resume, progress, rank=0, world=1):
    """Run this rank's share of the (point, batch) units not finished yet; then, on rank 0, write the outputs from
    every rank's pairs and the earlier run's: returns (curves, BD metrics) there, None on the other ranks."""
    out, settings = evaluation.out, evaluation.settings
    earlier = list(pairs.start(out, settings, resume, rank, world).values())
    prepared, units = plan_work(evaluation, {(row["point"], row["image"]) for row in earlier}, world)
    mine = distributed.share(units, rank, world)
    progress.reset(total=len(earlier) + sum(len(unit.batch) for unit in mine))
    progress.update(len(earlier))
    rows = []
    for unit in mine:
        rows += run_unit(evaluation, prepared, unit, rank, world)
        pairs.record(out, settings, in_order(evaluation, earlier * (world == 1) + rows), rank, world)
        progress.update(len(unit.batch))
    rows = distributed.gather(rows, world)
    if rank != 0:
        return None
    rows = in_order(evaluation, earlier + rows)
    pairs.finish(out, settings, rows)
    return write_curves(out, [point.label for point in evaluation.points], rows, evaluation.name,
                        settings["rounding"]["method"])


@dataclass(frozen=True)
class EvaluateJob:
    images: tuple  # the input images' paths
    outputs: Outputs
    points: RatePoints
    settings: RefinementSettings


def point_refiners(settings, codec):
    """(unrefined, refined) LatentRefiners of one rate point, at the point's lambda."""
    settings = settings.for_codec(codec)
    metric, lmbda = settings.objective.metric, settings.objective.lmbda
    if lmbda is None and codec.lmbda is None:
        raise UsageError(f"{codec.model_id} has no training lambda: give --lmbda, one per --checkpoint file")
    warn_other_metric(settings, codec)
    return LatentRefiner(codec, "base", lmbda=lmbda, distortion=metric), LatentRefiner(codec, settings)


def prepare(job):
    """The Evaluation of a job and whether it resumes, every option and input checked before any work."""
    sources = [Path(p) for p in job.images]
    if len({p.name for p in sources}) != len(sources):
        raise UsageError("two input images share a file name; evaluate them into separate --out folders")
    out = job.outputs.folder()
    resume = job.outputs.resume
    settings = job.settings.resolved(resumed_preset(out / pairs.MERGED, resume))
    if not resume:
        job.outputs.refuse_overwrite([out / name for name in OUTPUTS] + pairs.rank_files(out) + [out / "bitstreams"])
    images = [(p.name, read_rgb(p)) for p in sources]  # every input checked before any work
    for name, x in images:
        check_size(settings.objective.metric or "mse", name, x)
    points = job.points.points(settings.objective.metric or "mse")
    settings = settings.for_pixels([x.shape[-2] * x.shape[-1] for _, x in images])  # each point compiles anew
    record = {"rate_points": job.points.record(), **settings.record(), "points": [p.label for p in points]}
    return Evaluation(images, points, partial(point_refiners, settings), out, checked_device(settings.speed.device),
                      record, job.points.name(), settings.speed.batch_size)


def run(job):
    """Every rate point x image: the unrefined and the refined file; the curves, BD metrics, table and plot. Under
    torchrun each rank takes every world-th (rate point, batch) unit and rank 0 writes the outputs. The exit
    status."""
    evaluation = prepare(job)
    rank, world, evaluation.device = distributed.setup(evaluation.device)
    evaluation.out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(evaluation.points) * len(evaluation.images), desc="evaluate", unit="image",
              disable=rank > 0) as bar:
        try:
            written = evaluate(evaluation, job.outputs.resume, bar, rank, world)
        except KeyboardInterrupt:
            print(f"sgaplus: interrupted: the finished pairs are kept in {evaluation.out}; run the same command with "
                  f"--resume", file=sys.stderr)
            return INTERRUPTED
    distributed.finish(world)
    if rank == 0:
        report(*written, evaluation.out, world)
    return 0


def report(curves, bd, out, world):
    print(table(curves))
    print(f"BD-rate of refined against base: {_percent(bd.get('bd_rate_percent_psnr'))} (PSNR)"
          + (f", {_percent(bd['bd_rate_percent_ms_ssim'])} (MS-SSIM)" if "bd_rate_percent_ms_ssim" in bd else ""))
    print(f"wrote base.json, refined.json (CompressAI's format: python -m compressai.utils.plot -f {out}/base.json "
          f"{out}/refined.json), bd.json, images.csv and rd.png to {out}"
          + (f" ({world} processes)" if world > 1 else ""))


def _percent(value):
    return "undefined" if value is None else f"{value:+.2f}%"
