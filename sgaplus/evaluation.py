"""`sgaplus evaluate`: the RD curve of a set of images with and without refinement. For every rate point (a model
quality, level or checkpoint) and image, the unrefined and the refined file are written and decoded; the curves
are written in CompressAI's eval_model format (base.json, refined.json: `python -m compressai.utils.plot` reads
them), with BD metrics (bd.json), every pair (images.csv) and a plot (rd.png). Finished pairs are kept in
pairs.json, so an interrupted evaluation resumes where it stopped."""
import csv
import io
import json
import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from .bd import bd_psnr, bd_rate
from .codecs import registry
from .errors import UsageError
from .files.bitstream import decode, encode
from .files.images import write_atomic
from .files.loading import bundled_models, load_codec, load_model_class
from .pipeline import mean_or_none, write_json
from .refine.distortion import ms_ssim, ms_ssim_db

KINDS = ("base", "refined")
OUTPUTS = ("base.json", "refined.json", "bd.json", "images.csv", "rd.png", "pairs.json")
FIELDS = ("bpp", "psnr", "ms_ssim", "encoding_time", "loss")


@dataclass
class RatePoint:
    """One point of the curve: its label (in file names) and a function that loads its codec."""
    label: str
    load: Callable


@dataclass
class Evaluation:
    """What evaluate needs: images [(name, x)], rate points, make_refiner(codec) -> (base, refined) LatentRefiners,
    the output folder, the device, the run's settings (a resumed run must have the same) and the model's name."""
    images: list
    points: list
    make_refiners: Callable
    out: Path
    device: str
    settings: dict
    name: str


def rate_points(bundled, model=None, qualities=None, levels=None, checkpoints=(),
                model_class=None, model_args=None, lmbdas=None, metric="mse"):
    """The rate points the options name: checkpoint files (one point each; a --model-class's with one lambda each),
    or the qualities of the zoo's or the bundled architecture (default: all), or a variable-rate model's levels
    (default: all)."""
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
            return [RatePoint(label, partial(load_model_class, model_class, c, model_args, lmbda))
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


def finished_pairs(evaluation):
    """{(point, image): row} of an earlier run in the same folder (its settings must be these)."""
    path = evaluation.out / "pairs.json"
    if not path.exists():
        return {}
    try:
        earlier = json.loads(path.read_text())
        rows, settings = earlier["pairs"], earlier["settings"]
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"cannot resume: {path} is not a file this sgaplus wrote") from None
    if settings != evaluation.settings:
        changed = ", ".join(k for k in evaluation.settings if settings.get(k) != evaluation.settings[k])
        raise UsageError(f"cannot resume: the earlier run in {evaluation.out} used other settings ({changed})")
    return {(row["point"], row["image"]): row for row in rows
            if all((evaluation.out / row[kind]["file"]).is_file() for kind in KINDS)}


def code_one(codec, refiner, x, path, device):
    """Refine (or not) and encode one image, write the file, decode it: its figures."""
    start = time.perf_counter()
    result = refiner.refine(x.to(device))
    [stream] = encode(codec, result.y_hat, result.z_hat, x.shape[-2:])
    seconds = time.perf_counter() - start
    write_atomic(path, stream)
    x_hat, _ = decode(stream, lambda model_id: codec)
    x_hat = x_hat.cpu()
    similarity = (ms_ssim(x_hat, x) or [None])[0]
    return {"bpp": 8 * len(stream) / (x.shape[-2] * x.shape[-1]),
            "psnr": 10 * math.log10(1 / max(((x_hat - x) ** 2).mean().item(), 1e-12)),
            "ms_ssim": similarity, "encoding_time": seconds, "loss": result.best.loss[0]}


def evaluate(evaluation, resume, progress):
    """Run every (point, image) pair not finished yet, then write the curves; returns (curves, BD metrics)."""
    done = finished_pairs(evaluation) if resume else {}
    pairs = list(done.values())
    for point in evaluation.points:
        todo = [(name, x) for name, x in evaluation.images if (point.label, name) not in done]
        progress.update(len(evaluation.images) - len(todo))
        if not todo:
            continue
        codec = point.load().to(evaluation.device)
        refiners = dict(zip(KINDS, evaluation.make_refiners(codec)))
        for name, x in todo:
            row = {"point": point.label, "image": name, "height": x.shape[-2], "width": x.shape[-1]}
            for kind in KINDS:
                file = Path("bitstreams") / point.label / f"{Path(name).stem}.{kind}.bin"
                (evaluation.out / file).parent.mkdir(parents=True, exist_ok=True)
                row[kind] = {"file": file.as_posix(), **code_one(codec, refiners[kind], x, evaluation.out / file,
                                                                  evaluation.device)}
            row["lmbda"] = refiners["refined"].lmbda
            pairs.append(row)
            write_json(evaluation.out / "pairs.json", {"settings": evaluation.settings, "pairs": pairs})
            progress.update(1)
    return write_curves(evaluation, pairs)


def curve(evaluation, pairs, kind):
    """Per rate point, the averages over the images of one kind of file, in rate order."""
    points = []
    for point in evaluation.points:
        rows = [row[kind] for row in pairs if row["point"] == point.label]
        average = {f: mean_or_none([r[f] for r in rows]) for f in FIELDS}
        points.append({"point": point.label, **average})
    return sorted(points, key=lambda p: p["bpp"])


def compressai_format(name, description, points):
    """CompressAI's eval_model JSON: {"name", "description", "results": {"bpp": [...], "psnr-rgb": [...], ...}}
    (MS-SSIM only where every image had one)."""
    results = {"bpp": [p["bpp"] for p in points], "psnr-rgb": [p["psnr"] for p in points]}
    if all(p["ms_ssim"] is not None for p in points):
        results["ms-ssim-rgb"] = [p["ms_ssim"] for p in points]
    results["encoding_time"] = [p["encoding_time"] for p in points]
    results["points"] = [p["point"] for p in points]
    return {"name": name, "description": description, "results": results}


def bd_metrics(base, refined):
    """BD-rate and BD-PSNR of refined against base (and on MS-SSIM in dB where every point has it)."""
    out = {}
    qualities = {"psnr": lambda p: p["psnr"]}
    if all(p["ms_ssim"] is not None for p in base + refined):
        qualities["ms_ssim"] = lambda p: ms_ssim_db(p["ms_ssim"])
    for key, quality in qualities.items():
        args = [[f(p) for p in points] for points in (base, refined) for f in (lambda p: p["bpp"], quality)]
        for name, metric in ((f"bd_rate_percent_{key}", bd_rate), (f"bd_{key}_db", bd_psnr)):
            try:
                out[name] = metric(*args)
            except ValueError as error:  # curves that do not overlap, or whose quality does not rise with rate
                out[name], out[f"{name}_undefined"] = None, str(error)
    return out


def write_curves(evaluation, pairs):
    """Write base.json, refined.json, bd.json, images.csv, rd.png; returns (curves, BD metrics)."""
    out, curves = evaluation.out, {kind: curve(evaluation, pairs, kind) for kind in KINDS}
    for kind in KINDS:
        description = "without refinement" if kind == "base" else f"latents refined ({evaluation.settings['method']})"
        write_json(out / f"{kind}.json", compressai_format(f"{evaluation.name} {kind}", description, curves[kind]))
    bd = bd_metrics(curves["base"], curves["refined"])
    write_json(out / "bd.json", {"reference": "base", "test": "refined", **bd})
    write_images_csv(out / "images.csv", pairs)
    plot(out / "rd.png", curves, evaluation.name)
    return curves, bd


def table(curves):
    """The curves point by point, as the terminal shows them."""
    lines = [f"{'point':12s} {'base bpp':>9s} {'psnr':>7s} {'seconds':>8s} | {'refined bpp':>11s} {'psnr':>7s} "
             f"{'seconds':>8s}"]
    refined = {p["point"]: p for p in curves["refined"]}
    for b in curves["base"]:
        r = refined[b["point"]]
        lines.append(f"{b['point'][:12]:12s} {b['bpp']:9.4f} {b['psnr']:7.3f} {b['encoding_time']:8.2f} | "
                     f"{r['bpp']:11.4f} {r['psnr']:7.3f} {r['encoding_time']:8.2f}")
    return "\n".join(lines)


def write_images_csv(path, pairs):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["point", "image", "width", "height"] + [f"{k}_{f}" for k in KINDS for f in FIELDS] + ["lmbda"])
    for row in pairs:
        writer.writerow([row["point"], row["image"], row["width"], row["height"]]
                        + [row[k][f] for k in KINDS for f in FIELDS] + [row["lmbda"]])
    write_atomic(path, buffer.getvalue().encode())


def plot(path, curves, name):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for kind, style in zip(KINDS, ("o-", "s--")):
        ax.plot([p["bpp"] for p in curves[kind]], [p["psnr"] for p in curves[kind]], style, label=kind)
    ax.set_xlabel("file bpp")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"{name}: with and without latent refinement", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
