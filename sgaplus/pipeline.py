"""Refining a set of images into files: batching same-size images, refine-and-encode, the files each image
gets (all or nothing), resuming an interrupted run, and the metrics tables (terminal table,
metrics.json, metrics.csv)."""
import csv
import io
import json
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from .decoded_files import decoded_files, file_metrics
from .errors import UsageError
from .files.bitstream import encode
from .files.images import write_atomic, write_png
from .files.loading import DEFAULT_BUNDLED_ARCHITECTURE, bundled_models, load_codec
from .refine.distortion import DISTORTIONS, ms_ssim, ms_ssim_db
from .refine.refiner import LatentRefiner
from .refine.settings import compare_recorded, recorded_preset
from .refine.target import RateTarget

TARGET_TOLERANCE = 0.02  # a target-size file is reported as missed beyond this relative error

FIELDS = ("loss", "bpp", "psnr", "mse", "ms_ssim", "ms_ssim_db", "distortion")
KINDS = ("base", "refined", "file")  # a row's figures: the refiner's of both latents, the decoded file's
OUTPUT_SUFFIXES = (".bin", ".png")


@dataclass(frozen=True)
class Outputs:
    """Where a command writes: the folder, and whether it may overwrite (force) or continue (resume) a run there."""
    out: Path
    force: bool = False
    resume: bool = False

    def folder(self):
        if self.out.exists() and not self.out.is_dir():
            raise UsageError(f"--out {self.out} is a file, not a folder")
        return self.out

    def refuse_overwrite(self, paths):
        existing = [str(p) for p in paths if p.exists()]
        if existing and not self.force:
            raise UsageError(f"would overwrite {', '.join(existing)} (pass --force to allow)")


def check_size(metric, name, x):
    """UsageError (one line) unless the image is large enough for the metric."""
    try:
        DISTORTIONS[metric].check_size(x.shape[-2:], Path(name).name)
    except ValueError as error:
        raise UsageError(str(error)) from None


def warn_other_metric(settings, codec):
    """A word when the model was trained for another metric than the one it is refined for."""
    metric, lmbda = settings.objective.metric, settings.objective.lmbda
    if codec.metric not in (None, metric):
        chosen = "" if lmbda in (None, codec.lmbda) else f" with lambda {lmbda:.4g} (--lmbda chooses)"
        warnings.warn(f"{codec.model_id} was trained for {codec.metric}; refining it for {metric}{chosen}",
                      UserWarning, stacklevel=2)


def output_paths(out, stems):
    return [out / f"{stem}{suffix}" for stem in stems for suffix in OUTPUT_SUFFIXES]


def metrics_paths(out):
    return [out / "metrics.json", out / "metrics.csv"]


def refuse_replacing_inputs(out, sources):
    """An output that is one of the input images is refused, with or without --force."""
    inputs = {p.resolve() for p in sources}
    for target in output_paths(out, [p.stem for p in sources]) + metrics_paths(out):
        if target.resolve() in inputs:
            raise UsageError(f"the output {target} would replace the input image {target}; choose another --out")


def recorded_settings(path):
    """The settings an earlier run recorded in its settings file (metrics.json, or evaluate's pairs.json); None where
    the file is missing or holds none (a file that is not one of ours is refused when the settings are compared)."""
    try:
        return json.loads(Path(path).read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resumed_preset(path, resume):
    """The preset an earlier run recorded in its settings file, when resuming (None: none, or not resuming): a
    resumed run without --preset keeps it, so that it keeps its settings when the default changes."""
    return recorded_preset(recorded_settings(path)) if resume else None


def finished_rows(out, sources, record):
    """{stem: metrics row} of the images an earlier run in `out` finished: a row in its metrics.json and both
    files on disk. The earlier run must have recorded the same settings (`record`)."""
    path = out / "metrics.json"
    if not path.exists():
        return {}
    try:
        earlier = json.loads(path.read_text())
        rows = {Path(row["image"]).stem: row for row in earlier["images"]}
        before = earlier["settings"]
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"cannot resume: {path} is not a metrics file this sgaplus wrote") from None
    compare_recorded(before, record, out)
    stems = {p.stem for p in sources}
    return {stem: row for stem, row in rows.items()  # a row without "file": written before files were decoded
            if stem in stems and "file" in row and all(target.exists() for target in output_paths(out, [stem]))}


def write_image_outputs(out, row, file):
    """NAME.bin and NAME.png (what the decoder read back from it, decoded_files.DecodedFile), both or neither: an
    interrupt between the two removes the first."""
    stem = Path(row["image"]).stem
    written = []
    try:
        write_atomic(out / f"{stem}.bin", file.stream)
        written.append(out / f"{stem}.bin")
        write_png(out / f"{stem}.png", file.x_hat)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def in_order(rows):
    """Rows of (input index, row) as rows in input order."""
    return [row for _, row in sorted(rows, key=lambda item: item[0])]


def make_batches(images, batch_size, limits=None):
    """Same-size images in input order, in chunks of at most batch_size (limits: {size: a smaller batch size}, what
    fits the memory); each chunk refines as one batch."""
    groups = defaultdict(list)
    for index, (name, x) in enumerate(images):
        groups[tuple(x.shape[-2:])].append((index, name, x))
    chunks = []
    for size, group in groups.items():
        step = (limits or {}).get(size, batch_size)
        chunks += [group[i:i + step] for i in range(0, len(group), step)]
    return chunks


def own_files(codec, x, device):
    """(file bpp per image, base metrics) of the codec's own latents of the batch x, really encoded."""
    base = LatentRefiner(codec, "base").refine(x.to(device))
    streams = encode(codec, base.y_hat, base.z_hat, tuple(x.shape[-2:]))
    return [8 * len(stream) / (x.shape[-2] * x.shape[-1]) for stream in streams], base.best


def file_overhead_bits(codec, x, device):
    """Per image: bits of the file beyond the entropy models' estimate (container header, coder flush), from
    encoding the codec's own latents of x."""
    file_bpp, estimate = own_files(codec, x, device)
    pixels = x.shape[-2] * x.shape[-1]
    return [(real - estimated) * pixels for real, estimated in zip(file_bpp, estimate.bpp)]


def nearest_codec(images, file_bpp_of, device, codecs):
    """The key of the codec in {key: codec} whose own files of the images are nearest, on average, to the target
    file rates (file_bpp_of(image size))."""
    errors = {}
    for key, codec in codecs.items():
        codec = codec.to(device)
        gaps = []
        for _, x in images:
            [file_bpp], _ = own_files(codec, x, device)
            gaps.append(abs(file_bpp - file_bpp_of(x.shape[-2:])))
        errors[key] = sum(gaps) / len(gaps)
    return min(errors, key=errors.get)


def nearest_bundled_quality(images, file_bpp_of, device, architecture=DEFAULT_BUNDLED_ARCHITECTURE):
    """The bundled model of `architecture` whose own files of the images are nearest to the target file rates."""
    return nearest_codec(images, file_bpp_of, device, {quality: load_codec(quality=quality, bundled=architecture)
                                                       for quality in sorted(bundled_models(architecture))})


def nearest_level(images, file_bpp_of, device, load, levels):
    """The level of a variable-rate model (load(level) -> its codec) whose own files are nearest to the targets."""
    return nearest_codec(images, file_bpp_of, device, {level: load(level) for level in range(levels)})


def report_target(row, target_file_bpp):
    """Record how far the file is from the target rate and whether that is within the tolerance (target_met), and
    warn when it is not."""
    if target_file_bpp is None:
        return
    error = row["file_bpp"] / target_file_bpp - 1
    row["target_bpp"], row["target_error_percent"] = target_file_bpp, 100 * error
    row["target_met"] = abs(error) <= TARGET_TOLERANCE
    if not row["target_met"]:
        warnings.warn(f"{Path(row['image']).name}: target {target_file_bpp:.4f} bpp out of reach with this model and "
                      f"budget: the closest file is {row['file_bpp']:.4f} bpp ({100 * error:+.1f}%); try another "
                      f"--quality or more --iterations", RuntimeWarning, stacklevel=2)


def missed_targets(rows):
    """One line on the images whose file missed its target size by more than the tolerance; None if none did."""
    missed = [row for row in rows if row.get("target_met") is False]
    if not missed:
        return None
    worst = max((row["target_error_percent"] for row in missed), key=abs)
    return (f"{len(missed)} of {len(rows)} images missed the target size by more than {100 * TARGET_TOLERANCE:g}% "
            f"(the largest miss {worst:+.1f}%); their files are the closest ones the budget reached")


def refine_batch(batch, codec, refiner, device, seed, target_file_bpp=None):
    """Refine one batch; a (input index, metrics row, decoded_files.DecodedFile) per image. The row's "base" and
    "refined" are the refiner's figures (bpp: the entropy models' estimate), its "file" those of what the decoder
    makes of the file written (DecodeMismatch, naming the image, where that is not the refiner's reconstruction).
    With target_file_bpp, the refiner's rate target is set per image so that the file (not only the estimate) lands
    on it."""
    size = tuple(batch[0][2].shape[-2:])
    x = torch.cat([x for _, _, x in batch]).to(device)
    if target_file_bpp is not None:
        overhead = file_overhead_bits(codec, x, device)
        goal = [target_file_bpp - bits / (size[0] * size[1]) for bits in overhead]
        if min(goal) <= 0:
            raise UsageError(f"--target: {target_file_bpp:.4f} bpp is below the file's own overhead")
        refiner.target = RateTarget(goal, tolerance=TARGET_TOLERANCE / 2)
    names = [Path(name).name for _, name, _ in batch]
    result = refiner.refine(x, seed=seed, names=names)
    files = decoded_files(codec, encode(codec, result.y_hat, result.z_hat, size), result.x_hat, names)
    base, refined = (with_ms_ssim(metrics, x_hat, x) for metrics, x_hat in ((result.base, result.base_x_hat),
                                                                             (result.best, result.x_hat)))
    return [(index, {"image": name, "height": size[0], "width": size[1], "base": base[i],
                     "refined": refined[i], "file": file_metrics(files[i], x[i:i + 1], refiner.distortion,
                                                                 result.lmbda[i]),
                     "best_step": result.best_step[i],
                     "nonfinite_step": result.nonfinite_step[i], "stopped_step": result.stopped_step[i],
                     "lmbda": result.lmbda[i], "decode_gap": files[i].gap,
                     "file_bytes": len(files[i].stream),
                     "file_bpp": 8 * len(files[i].stream) / (size[0] * size[1])}, files[i])
            for i, (index, name, _) in enumerate(batch)]


def with_ms_ssim(metrics, x_hat, x):
    """Each image's metrics row with the MS-SSIM of its reconstruction, and that in dB (None for images too small for
    MS-SSIM's five scales)."""
    values = ms_ssim(x_hat, x) or [None] * x.shape[0]
    return [{**metrics.row(i), "ms_ssim": value, "ms_ssim_db": ms_ssim_db(value)} for i, value in enumerate(values)]


def mean_or_none(values):
    """The mean, or None where a value is None (MS-SSIM of an image too small for it)."""
    return None if None in values else sum(values) / len(values)


def averages(rows, key):
    """The mean of each field over the rows' `key` metrics."""
    return {f: mean_or_none([r[key][f] for r in rows]) for f in FIELDS}


def write_json(path, value):
    """value as indented JSON, written atomically."""
    write_atomic(path, (json.dumps(value, indent=2) + "\n").encode())


def _decibels(value):
    return f"{'-':>7s}" if value is None else f"{value:7.3f}"


def table(rows):
    """The terminal's table: the refiner's figures of the unrefined and the refined latents (bpp: the entropy
    models' estimate), and those of the file written, as its decoder reads it back."""
    lines = [f"{'image':24s} {'base bpp':>9s} {'psnr':>7s} {'ms-ssim':>7s} {'loss':>8s} | {'refined bpp':>11s} "
             f"{'psnr':>7s} {'ms-ssim':>7s} {'loss':>8s} | {'file bpp':>8s} {'psnr':>7s} {'ms-ssim':>7s} {'loss':>8s}"]
    for r in rows:
        cells = [f"{m['psnr']:7.3f} {_decibels(m['ms_ssim_db'])} {m['loss']:8.4f}"
                 for m in (r["base"], r["refined"], r["file"])]
        lines.append(f"{Path(r['image']).name[:24]:24s} {r['base']['bpp']:9.4f} {cells[0]} | "
                     f"{r['refined']['bpp']:11.4f} {cells[1]} | {r['file']['bpp']:8.4f} {cells[2]}")
    lines.append("(psnr and ms-ssim in dB; ms-ssim needs sides of 161 pixels or more; bpp: the entropy models' "
                 "estimate, file bpp: the file's bytes; the file's figures are what its decoder reads back)")
    return "\n".join(lines)


def write_metrics(out, rows, codec, refiner, record, complete=True):
    """metrics.json (the run's settings as recorded, rows, averages; complete=False while a run is under way) and
    metrics.csv."""
    summary = {"model": codec.model_id, "lmbda": refiner.lmbda, "distortion": refiner.distortion.name,
               "method": refiner.method, "classes": refiner.settings.rounding.classes,
               "iterations": refiner.iterations, "settings": record, "complete": complete, "images": rows,
               "average": {"base": averages(rows, "base"), "refined": averages(rows, "refined"),
                           "file": averages(rows, "file"), "file_bpp": sum(r["file_bpp"] for r in rows) / len(rows)}}
    write_json(out / "metrics.json", summary)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "width", "height"] + [f"{k}_{f}" for k in KINDS for f in FIELDS] + ["file_bytes"])
    for r in rows:
        writer.writerow([r["image"], r["width"], r["height"]] + [r[k][f] for k in KINDS for f in FIELDS]
                        + [r["file_bytes"]])
    write_atomic(out / "metrics.csv", buffer.getvalue().encode())
