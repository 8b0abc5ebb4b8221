"""`sgaplus evaluate`: the RD curve of a set of images with and without refinement. For every rate point (a model
quality, level or checkpoint) and image, the unrefined and the refined file are written and decoded. The same-size
images of a rate point refine together, in the batches `refine` cuts (pipeline.make_batches, at most --batch-size
and what the memory plan lets fit); under torchrun, the (rate point, batch) units are shared among the ranks. The
finished pairs are kept as they finish (evaluation_pairs.py), and the outputs are written once, from all of them
(evaluation_curves.py)."""
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import torch

from . import distributed, evaluation_pairs
from .codecs import registry
from .decoded_files import decoded_files, file_metrics
from .errors import SgaplusError, UsageError
from .evaluation_curves import write_curves
from .evaluation_pairs import KINDS
from .files.bitstream import encode
from .files.images import write_atomic
from .files.loading import bundled_models, calls_named, load_codec, load_model_class
from .pipeline import make_batches
from .refine import memory

OUTPUTS = ("base.json", "refined.json", "bd.json", "images.csv", "rd.png", evaluation_pairs.MERGED)


@dataclass
class RatePoint:
    """One point of the curve: its label (in file names) and a function that loads its codec."""
    label: str
    load: Callable


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


def rate_points(bundled, model=None, qualities=None, levels=None, checkpoints=(),
                model_class=None, model_args=None, lmbdas=None, metric="mse", model_calls=None):
    """The rate points the options name: checkpoint files (one point each; a --model-class's with one lambda each,
    called through model_calls where given), or the qualities of the zoo's or the bundled architecture (default:
    all), or a variable-rate model's levels (default: all)."""
    if lmbdas and len(lmbdas) != len(checkpoints):
        raise UsageError(f"--lmbda gives one lambda per --checkpoint file: {len(lmbdas)} lambdas for "
                         f"{len(checkpoints)} files")
    if checkpoints:
        if qualities or levels:
            raise UsageError("with --checkpoint files, each file is a rate point: --qualities and --levels do not "
                             "apply")
        labels = [Path(c).stem for c in checkpoints]
        if len(set(labels)) != len(labels):
            raise UsageError("two --checkpoint files share a name; the rate points are named by their files")
        lmbdas = lmbdas or [None] * len(checkpoints)
        if model_class is not None:
            calls = calls_named(model_calls)  # refused now, before any work
            return [RatePoint(label, partial(load_model_class, model_class, c, model_args, lmbda, calls))
                    for label, c, lmbda in zip(labels, checkpoints, lmbdas)]
        return [RatePoint(label, partial(_with_lmbda, partial(load_codec, model, checkpoint=c), lmbda))
                for label, c, lmbda in zip(labels, checkpoints, lmbdas)]
    first = load_codec(model, (qualities or [None])[0], bundled=bundled, metric=metric)
    if first.variable_rate:
        if qualities:
            raise UsageError(f"{first.model_id} is a variable-rate model: choose its rate points with --levels")
        return [RatePoint(f"level{level}", partial(load_codec, model, bundled=bundled, level=level, metric=metric))
                for level in levels or range(len(first.model.levels))]
    if levels:
        raise UsageError(f"--levels chooses the rate points of a variable-rate model; {first.model_id} has qualities")
    return [RatePoint(f"q{quality}", partial(load_codec, model, quality, bundled=bundled, metric=metric))
            for quality in qualities or available_qualities(model, bundled, metric)]


def _with_lmbda(load, lmbda):
    codec = load()
    codec.lmbda = codec.lmbda if lmbda is None else lmbda
    return codec


def available_qualities(model, bundled, metric):
    return registry.zoo_qualities(model, metric) if model else sorted(bundled_models(bundled))


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
    earlier = list(evaluation_pairs.start(out, settings, resume, rank, world).values())
    prepared, units = plan_work(evaluation, {(row["point"], row["image"]) for row in earlier}, world)
    mine = distributed.share(units, rank, world)
    progress.reset(total=len(earlier) + sum(len(unit.batch) for unit in mine))
    progress.update(len(earlier))
    rows = []
    for unit in mine:
        rows += run_unit(evaluation, prepared, unit, rank, world)
        evaluation_pairs.record(out, settings, in_order(evaluation, earlier * (world == 1) + rows), rank, world)
        progress.update(len(unit.batch))
    rows = distributed.gather(rows, world)
    if rank != 0:
        return None
    rows = in_order(evaluation, earlier + rows)
    evaluation_pairs.finish(out, settings, rows)
    return write_curves(out, [point.label for point in evaluation.points], rows, evaluation.name,
                        settings["method"])
