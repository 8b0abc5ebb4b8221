"""Re-run the SGA+ paper's comparisons with the package; write CSV/JSON tables and PNG plots.

    python bench/compare.py methods    # all methods at equal budget, curves of true loss vs iteration
    python bench/compare.py tau        # true loss against tau_max per method (robustness)
    python bench/compare.py ssl-shape  # true loss across the SSL parameter a
    python bench/compare.py rd         # RD curves of the bundled models (base, atanh, SSL; real file sizes)
                                       # against JPEG and WebP (Pillow) on the same images; BD metrics
    python bench/compare.py multirate  # one model refined with several lambdas vs the base models' curve
    python bench/compare.py early-stop --iterations 2000  # early stopping vs a fixed budget
    python bench/compare.py budget     # budget-aware schedule at 500 vs SGA+'s schedule at 500 and 2000
    python bench/compare.py schedules --iterations 2000  # each method on its own and the shared schedule
    python bench/compare.py target     # refining to a target file size vs the nearest bundled model's own file
    python bench/compare.py architectures  # every bundled architecture: base vs SSL, true loss and real files

Common options: --images (held-out samples or image files), --crop (centre crop, 0 for whole
images), --iterations, --device, --out; the codec: --bundled ARCHITECTURE (default mbt2018-mean),
--model ARCHITECTURE (CompressAI's zoo) or --checkpoint FILE, with --quality; --metric mse|ms-ssim, the
distortion refined for and judged by (rd: curves and BD metrics on PSNR or MS-SSIM in dB; a zoo model's
MS-SSIM weights; not for multirate, target, architectures). Results go to
OUT/compare-<name>[-<codec>].{json,csv,png} (the default bundled model writes no codec suffix).
"""
import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from machine import device_name
from tqdm import tqdm

from sgaplus.bd import bd_psnr, bd_rate
from sgaplus.codecs import registry
from sgaplus.decoded_files import decoded_files
from sgaplus.files.bitstream import encode
from sgaplus.files.images import EVAL_IMAGES, load_shipped_image, read_rgb
from sgaplus.files.loading import (
    DEFAULT_BUNDLED_ARCHITECTURE,
    bundled_architectures,
    bundled_models,
    default_bundled_quality,
    load_codec,
)
from sgaplus.refine.distortion import MS_SSIM_MIN_SIDE, ms_ssim, ms_ssim_db, objective_for
from sgaplus.refine.refiner import LatentRefiner
from sgaplus.refine.schedule import TemperatureSchedule, budget_schedule, schedule_preset
from sgaplus.refine.stopping import EarlyStopping

METHODS = [("base", 2, None), ("ste", 2, None), ("uniform", 2, None), ("atanh", 2, None), ("linear", 2, None),
           ("cosine", 2, None), ("ssl", 2, 2.3), ("linear", 3, None), ("cosine", 3, None), ("ssl", 3, 1.4)]
SGA_METHODS = [("atanh", 2, None), ("linear", 2, None), ("cosine", 2, None), ("ssl", 2, 2.3)]
PILLOW_QUALITIES = (1, 3, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90)  # JPEG and WebP settings of the RD comparison
QUALITY = {"mse": 1, "ms-ssim": 2}  # where a Pillow curve's point holds the quality each metric is judged by
QUALITY_KEY = {"mse": "psnr", "ms-ssim": "ms_ssim_db"}  # a result's quality for each metric
QUALITY_LABEL = {"mse": "PSNR (dB)", "ms-ssim": "MS-SSIM (dB)"}


def label(method, classes, a=None):
    return f"{method}{'-3c' if classes == 3 else ''}{f' a={a:g}' if a is not None and method == 'ssl' else ''}"


def load_images(names, crop):
    """One batch (B, 3, H, W): shipped sample names or files, centre-cropped to crop x crop if crop > 0."""
    images = []
    for name in names:
        x = read_rgb(name) if Path(name).exists() else load_shipped_image(name).unsqueeze(0)
        if crop:
            h, w = x.shape[-2:]
            top, left = (h - crop) // 2, (w - crop) // 2
            x = x[..., top:top + crop, left:left + crop]
        images.append(x)
    if len({tuple(x.shape) for x in images}) != 1:
        sys.exit("images differ in size: pass --crop to refine them as one batch")
    return torch.cat(images)


def mean(values):
    return sum(values) / len(values)


def run(codec, x, method, classes=2, a=None, files=False, **kwargs):
    """Refine the batch; averages over images of the best true metrics, and the averaged history. files: also
    encode the refined latents: the real files' bpp per image (file_bpp) and averaged (mean_file_bpp). A distortion
    the model was not trained for gets the lambda at the training lambda's place in CompressAI's tables."""
    kwargs["distortion"], kwargs["lmbda"] = objective_for(codec, kwargs.get("distortion"), kwargs.get("lmbda"))
    start = time.time()
    result = LatentRefiner(codec, method, classes, a=a, **kwargs).refine(x)
    seconds = time.time() - start
    history = [{"step": h["step"], "loss": mean(h["loss"]), "bpp": mean(h["bpp"]), "psnr": mean(h["psnr"]),
                "relaxed_loss": None if h["relaxed_loss"] is None else mean_of_refining(h["relaxed_loss"])}
               for h in result.history]
    decibels = [ms_ssim_db(value) for value in ms_ssim(result.x_hat, x) or [None]]
    out = {"loss": mean(result.best.loss), "bpp": mean(result.best.bpp), "psnr": mean(result.best.psnr),
           "ms_ssim_db": None if None in decibels else mean(decibels),
           "base_loss": mean(result.base.loss), "seconds": seconds, "history": history,
           "per_image_loss": result.best.loss, "per_image_psnr": result.best.psnr, "per_image_ms_ssim_db": decibels,
           "stopped_step": result.stopped_step}
    if files:
        pixels = x.shape[-2] * x.shape[-1]
        streams = encode(codec, result.y_hat, result.z_hat, x.shape[-2:])
        decoded_files(codec, streams, result.x_hat, [f"image {i}" for i in range(len(streams))])  # each file is read
        out["file_bpp"] = [8 * len(s) / pixels for s in streams]  # back to the reconstruction measured, or refused
        out["mean_file_bpp"] = mean(out["file_bpp"])
    return out


def pillow_curve(x, fmt):
    """Per image, [(file bpp, PSNR, MS-SSIM dB or None)] of Pillow's `fmt` ("JPEG" or "WEBP") at PILLOW_QUALITIES,
    in their order."""
    from PIL import Image
    curves = []
    for image in x.cpu():
        array = image.mul(255).round().byte().permute(1, 2, 0).numpy()
        points = []
        for quality in PILLOW_QUALITIES:
            buffer = io.BytesIO()
            Image.fromarray(array).save(buffer, format=fmt, quality=quality)
            decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), dtype=np.float64) / 255
            mse = np.mean((decoded - array / 255) ** 2)
            [similarity] = ms_ssim(torch.from_numpy(decoded).permute(2, 0, 1)[None].float(), image[None]) or [None]
            points.append((8 * buffer.tell() / (array.shape[0] * array.shape[1]), 10 * np.log10(1 / mse),
                           ms_ssim_db(similarity)))
        curves.append(points)
    return curves


def quality_at(curve, bpp, index=QUALITY["mse"]):
    """A Pillow curve's quality (index 1: PSNR, 2: MS-SSIM dB) at `bpp`, linear in log rate between its points (None
    outside them)."""
    rates, values = zip(*sorted((point[0], point[index]) for point in curve))
    if not rates[0] <= bpp <= rates[-1]:
        return None
    return float(np.interp(np.log(bpp), np.log(rates), values))


def mean_of_refining(values):
    """The mean over the images still refining (an image that left the batch has no relaxed loss)."""
    values = [v for v in values if v is not None]
    return mean(values) if values else None


def finish_axes(fig, ax, xlabel, ylabel, legend_size=None):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    return fig


def write(out, name, rows, meta, plot=None):
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"compare-{name}{meta['file_suffix']}"
    flat = [{k: v for k, v in row.items() if k != "history"} for row in rows]
    path.with_suffix(".json").write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    with path.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(flat[0]))
        writer.writeheader()
        writer.writerows(flat)
    if plot is not None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig = plot(plt)
        fig.savefig(path.with_suffix(".png"), dpi=110)
        plt.close(fig)
    print(f"wrote {path}.json, .csv" + (", .png" if plot else ""))
    for row in flat:
        print("  " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))


def cmd_methods(args, x, meta):
    codec = codec_on(args, args.quality)
    rows = []
    for method, classes, a in tqdm(METHODS, desc="methods"):
        r = run(codec, x, method, classes, a, iterations=args.iterations, **refine_kwargs(args))
        rows.append({"method": label(method, classes, a), **r})

    def plot(plt):
        fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
        for row in rows:
            if row["method"] == "base":
                continue
            h = row["history"]
            steps = [p["step"] for p in h]
            style = "--" if "-3c" in row["method"] else "-"
            axes[0, 0].plot(steps, [p["loss"] for p in h], style, label=row["method"])
            axes[0, 1].plot(steps[1:], [p["relaxed_loss"] - p["loss"] for p in h[1:]], style, label=row["method"])
            axes[1, 0].plot(steps, [p["psnr"] for p in h], style, label=row["method"])
            axes[1, 1].plot(steps, [p["bpp"] for p in h], style, label=row["method"])
        for ax, title in zip(axes.flat, ("true RD loss", "relaxed minus true loss", "PSNR (dB)", "bpp")):
            ax.set_title(title)
            ax.set_xlabel("iteration")
            ax.grid(alpha=0.3)
        axes[0, 0].legend(fontsize=7)
        fig.suptitle(f"methods at equal budget ({meta['images']}, {codec.model_id})")
        fig.tight_layout()
        return fig

    write(args.out, "methods", rows, meta, plot)


def refine_kwargs(args):
    return {"check_every": args.check_every, "distortion": args.metric}


def pillow_gaps(pillow, r, metric="mse"):
    """{minus_jpeg_db, minus_webp_db}: a run's PSNR (or MS-SSIM dB) minus each Pillow codec's at the same file rate,
    per image then averaged (None where a file rate lies outside the Pillow curve)."""
    out, mine = {}, r["per_image_psnr"] if metric == "mse" else r["per_image_ms_ssim_db"]
    for fmt, per_image in pillow.items():
        gaps = [None if (p := quality_at(curve, bpp, QUALITY[metric])) is None or value is None else value - p
                for curve, bpp, value in zip(per_image, r["file_bpp"], mine)]
        out[f"minus_{fmt.lower()}_db"] = None if None in gaps else mean(gaps)
    return out


def codec_on(args, quality):
    """The codec of the options at quality (a zoo model's weights trained for --metric)."""
    metric = args.metric if args.model and not args.checkpoint else "mse"
    return load_codec(args.model, quality, args.checkpoint, bundled=args.bundled, metric=metric).to(args.device)


def qualities(args):
    """The qualities an RD sweep covers: the bundled architecture's, or the zoo's."""
    if args.checkpoint:
        sys.exit("this comparison sweeps qualities: use --bundled or --model")
    return registry.zoo_qualities(args.model) if args.model else sorted(bundled_models(args.bundled))


def cmd_tau(args, x, meta):
    codec = codec_on(args, args.quality)
    taus = (0.2, 0.4, 0.6, 0.8, 1.0)
    rows = []
    for method, classes, a in tqdm(SGA_METHODS, desc="tau_max"):
        for tau_max in taus:
            r = run(codec, x, method, classes, a, iterations=args.iterations,
                    schedule=TemperatureSchedule(tau_max=tau_max), **refine_kwargs(args))
            rows.append({"method": label(method, classes, a), "tau_max": tau_max, **r})

    def plot(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        for name in dict.fromkeys(r["method"] for r in rows):
            pts = [(r["tau_max"], r["loss"]) for r in rows if r["method"] == name]
            ax.plot(*zip(*pts), "o-", label=name)
        return finish_axes(fig, ax, "tau_max", "true RD loss")

    write(args.out, "tau", rows, meta, plot)


def cmd_ssl_shape(args, x, meta):
    codec = codec_on(args, args.quality)
    rows = []
    for a in tqdm((0.3, 0.6, 1.0, 1.5, 2.3, 3.5, 5.0), desc="ssl a"):
        rows.append({"a": a, **run(codec, x, "ssl", 2, a, iterations=args.iterations, **refine_kwargs(args))})
    references = {label(m, c, aa): run(codec, x, m, c, aa, iterations=args.iterations, **refine_kwargs(args))
                  for m, c, aa in (("linear", 2, None), ("cosine", 2, None), ("atanh", 2, None))}

    def plot(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.semilogx([r["a"] for r in rows], [r["loss"] for r in rows], "o-", label="ssl")
        for name, r in references.items():
            ax.axhline(r["loss"], linestyle="--", color={"linear": "C1", "cosine": "C2", "atanh": "C3"}[name],
                       label=name)
        return finish_axes(fig, ax, "ssl parameter a", "true RD loss")

    meta["reference_methods"] = {k: {kk: v[kk] for kk in ("loss", "bpp", "psnr")} for k, v in references.items()}
    write(args.out, "ssl-shape", rows, meta, plot)


def cmd_rd(args, x, meta):
    """Base, atanh and SSL over the models' qualities (the real files' bpp), with JPEG and WebP on the same images;
    per model point, each image's PSNR minus JPEG's and WebP's at that image's file rate."""
    variants = [("base", ("base", 2, None)), ("atanh", ("atanh", 2, None)), ("ssl", ("ssl", 2, 2.3))]
    pillow = {fmt: pillow_curve(x, fmt) for fmt in ("JPEG", "WEBP")}
    curves = {name: [] for name, _ in variants}
    for quality in tqdm(qualities(args), desc="models"):
        codec = codec_on(args, quality)
        for name, (method, classes, a) in variants:
            r = run(codec, x, method, classes, a, files=True, iterations=args.iterations, **refine_kwargs(args))
            curves[name].append({"quality": quality, "lmbda": codec.lmbda, "bpp": r["mean_file_bpp"],
                                 "psnr": r["psnr"], "ms_ssim_db": r["ms_ssim_db"], "likelihood_bpp": r["bpp"],
                                 "loss": r["loss"], **pillow_gaps(pillow, r, args.metric)})
    for fmt, per_image in pillow.items():  # averaged over images, quality by quality, as the models' points
        curves[fmt.lower()] = [{"quality": q, "bpp": mean([c[k][0] for c in per_image]),
                                "psnr": mean([c[k][1] for c in per_image]),
                                "ms_ssim_db": None if None in (d := [c[k][2] for c in per_image]) else mean(d)}
                               for k, q in enumerate(PILLOW_QUALITIES)]
    quality_key = QUALITY_KEY[args.metric]
    rows = [{"variant": name, **point} for name, points in curves.items() for point in points]

    def bd(test, ref):
        args = [[p[field] for p in curves[name]] for name in (ref, test) for field in ("bpp", quality_key)]
        result = {}
        for key, metric in ((f"bd_{quality_key}", bd_psnr), ("bd_rate_percent", bd_rate)):
            try:
                result[key] = metric(*args)
            except ValueError as error:  # curves that do not overlap, or whose PSNR does not rise with rate
                result[key], result[f"{key}_undefined"] = None, str(error)
        return result

    meta["bd"] = {"ssl vs atanh": bd("ssl", "atanh"), "ssl vs base": bd("ssl", "base"),
                  "atanh vs base": bd("atanh", "base"), "base vs jpeg": bd("base", "jpeg"),
                  "ssl vs jpeg": bd("ssl", "jpeg"), "ssl vs webp": bd("ssl", "webp")}
    meta["rate"] = "real file bpp (sgaplus bitstreams, Pillow files)"
    meta["quality"] = QUALITY_LABEL[args.metric]
    meta["bd_fit"] = "cubic polynomial (VCEG-M33), log10 rate"
    print(json.dumps(meta["bd"], indent=1))

    def plot(plt):
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for name, points in curves.items():
            style = ":" if name in ("jpeg", "webp") else "o-"
            ax.plot([p["bpp"] for p in points], [p[quality_key] for p in points], style, label=name)
        models = [p["bpp"] for name, _ in variants for p in curves[name]]
        ax.set_xlim(0.5 * min(models), 1.5 * max(models))
        ax.set_title(f"{meta['codec']}: base vs refined vs JPEG/WebP", fontsize=9)
        return finish_axes(fig, ax, "file bpp", QUALITY_LABEL[args.metric])

    write(args.out, "rd", rows, meta, plot)


def cmd_multirate(args, x, meta):
    models = bundled_models(args.bundled)
    middle = default_bundled_quality(args.bundled)
    codec = codec_on(args, middle)
    rows = []
    for quality in tqdm(sorted(models), desc="lambdas"):
        lmbda = models[quality]["lmbda"]
        base = run(codec_on(args, quality), x, "base", **refine_kwargs(args))
        refined = run(codec, x, "ssl", 2, 2.3, iterations=args.iterations, lmbda=lmbda, **refine_kwargs(args))
        rows.append({"lmbda": lmbda, "base_model": quality, "base_bpp": base["bpp"], "base_psnr": base["psnr"],
                     "refined_model": middle, "refined_bpp": refined["bpp"], "refined_psnr": refined["psnr"]})

    def plot(plt):
        fig, ax = plt.subplots(figsize=(6, 4.5))
        ax.plot([r["base_bpp"] for r in rows], [r["base_psnr"] for r in rows], "o-",
                label="base models (one per lambda)")
        ax.plot([r["refined_bpp"] for r in rows], [r["refined_psnr"] for r in rows], "s--",
                label=f"model q{middle} refined with each lambda (ssl)")
        for r in rows:
            ax.annotate(f"{r['lmbda']:g}", (r["refined_bpp"], r["refined_psnr"]), fontsize=7)
        return finish_axes(fig, ax, "bpp", "PSNR (dB)", legend_size=8)

    write(args.out, "multirate", rows, meta, plot)


def plot_curves(runs, title):
    """A plot function of true loss against iteration for {label: run()}."""
    def plot(plt):
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for name, r in runs.items():
            ax.plot([p["step"] for p in r["history"]], [p["loss"] for p in r["history"]], label=name)
        ax.set_title(title, fontsize=9)
        return finish_axes(fig, ax, "iteration", "true RD loss (mean over images)", legend_size=8)
    return plot


def cmd_early_stop(args, x, meta):
    """Fixed budget against early stopping: iterations each image ran, and the final true loss."""
    codec = codec_on(args, args.quality)
    fixed = run(codec, x, "ssl", 2, 2.3, iterations=args.iterations, **refine_kwargs(args))
    runs, rows = {f"fixed {args.iterations}": fixed}, []
    for patience, min_delta in ((10, 1e-3), (20, 1e-3)):
        r = run(codec, x, "ssl", 2, 2.3, iterations=args.iterations, early_stopping=EarlyStopping(patience, min_delta),
                **refine_kwargs(args))
        ran = [args.iterations if s is None else s for s in r["stopped_step"]]
        rows.append({"patience": patience, "min_delta": min_delta, "iterations_run": ran,
                     "iterations_saved_percent": 100 * (1 - sum(ran) / (len(ran) * args.iterations)),
                     "loss": r["loss"], "fixed_loss": fixed["loss"],
                     "loss_vs_fixed_percent": 100 * (r["loss"] / fixed["loss"] - 1),
                     "per_image_vs_fixed_percent": [100 * (a / b - 1) for a, b in zip(r["per_image_loss"],
                                                                                        fixed["per_image_loss"])]})
        runs[f"early stop: patience {patience}, min_delta {min_delta:g}"] = r
    write(args.out, "early-stop", rows, meta, plot_curves(runs, "early stopping vs a fixed budget (ssl)"))


def cmd_budget(args, x, meta):
    """The default schedule at a short and a long budget against the budget-aware schedule at the short one."""
    codec = codec_on(args, args.quality)
    short, long = args.iterations, args.long_iterations
    runs = {f"sga+ schedule, {short} it": run(codec, x, "ssl", 2, 2.3, iterations=short, **refine_kwargs(args)),
            f"sga+ schedule, {long} it": run(codec, x, "ssl", 2, 2.3, iterations=long, **refine_kwargs(args))}
    for hold, lr in ((0.0, 5e-3), (0.2, 5e-3), (0.2, 1e-2), (0.2, 2e-2)):
        runs[f"budget schedule (hold {hold:g}, lr {lr:g}), {short} it"] = run(
            codec, x, "ssl", 2, 2.3, iterations=short, schedule=budget_schedule(short, hold_fraction=hold), lr=lr,
            **refine_kwargs(args))
    rows = [{"run": name, "loss": r["loss"], "bpp": r["bpp"], "psnr": r["psnr"]} for name, r in runs.items()]
    write(args.out, "budget", rows, meta, plot_curves(runs, "budget-aware schedule vs SGA+'s default (ssl)"))


def cmd_schedules(args, x, meta):
    """Each method on the schedule its authors ran it with, and on the shared SGA+ schedule."""
    codec = codec_on(args, args.quality)
    plan = [("atanh", 2, None, "sga+"), ("atanh", 2, None, "sga+-atanh"), ("atanh", 2, None, "yang2020"),
            ("ssl", 2, 2.3, "sga+")]
    runs, rows = {}, []
    for method, classes, a, preset in tqdm(plan, desc="schedules"):
        r = run(codec, x, method, classes, a, iterations=args.iterations,
                schedule=schedule_preset(preset, args.iterations), **refine_kwargs(args))
        runs[f"{label(method, classes, a)} on {preset}"] = r
        rows.append({"method": label(method, classes, a), "schedule": preset, "loss": r["loss"], "bpp": r["bpp"],
                     "psnr": r["psnr"]})
    write(args.out, "schedules", rows, meta, plot_curves(runs, "each method on its own and on the shared schedule"))


def cmd_target(args, x, meta):
    """Target file size: sgaplus refining to the target (from the bundled model nearest to it) against what a
    user does without it, the bundled model whose own file is nearest to the target."""
    from sgaplus import pipeline
    names = list(args.images)
    own = {}  # quality -> per image (file bpp, psnr) of the model's own latents
    for quality in sorted(bundled_models(args.bundled)):
        file_bpp, base = pipeline.own_files(codec_on(args, quality), x, args.device)
        own[quality] = list(zip(file_bpp, base.psnr))
    rows = []
    for target in tqdm(args.targets, desc="targets"):
        images = [(name, x[i:i + 1].cpu()) for i, name in enumerate(names)]
        quality = pipeline.nearest_bundled_quality(images, lambda size: target, args.device, args.bundled)
        codec = codec_on(args, quality)
        refiner = LatentRefiner(codec, "ssl", iterations=args.iterations, **refine_kwargs(args))
        batch = [(i, name, x[i:i + 1]) for i, name in enumerate(names)]
        for i, row, _ in pipeline.refine_batch(batch, codec, refiner, args.device, 0, target):
            nearest = min(own, key=lambda q: abs(own[q][i][0] - target))
            rows.append({"target_bpp": target, "image": names[i], "refined_from": quality,
                         "file_bpp": row["file_bpp"], "error_percent": 100 * (row["file_bpp"] / target - 1),
                         "psnr": row["refined"]["psnr"], "nearest_quality": nearest,
                         "nearest_file_bpp": own[nearest][i][0],
                         "nearest_error_percent": 100 * (own[nearest][i][0] / target - 1),
                         "nearest_psnr": own[nearest][i][1]})

    def plot(plt):
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for i, name in enumerate(names):
            ax.plot([own[q][i][0] for q in sorted(own)], [own[q][i][1] for q in sorted(own)], "o:", color=f"C{i}",
                    label=f"{name}: bundled models' own files")
            mine = [r for r in rows if r["image"] == name]
            ax.plot([r["file_bpp"] for r in mine], [r["psnr"] for r in mine], "s", color=f"C{i}",
                    label=f"{name}: sgaplus --target-bpp")
        for target in args.targets:
            ax.axvline(target, color="grey", alpha=0.3)
        return finish_axes(fig, ax, "file bpp", "PSNR (dB)", legend_size=7)

    meta["targets"] = list(args.targets)
    write(args.out, "target", rows, meta, plot)


def cmd_architectures(args, x, meta):
    """Each bundled architecture's default quality: the codec's own latents against SSL refinement (true loss,
    real file bpp, PSNR, time)."""
    rows, pillow = [], {fmt: pillow_curve(x, fmt) for fmt in ("JPEG", "WEBP")}
    for architecture in tqdm(bundled_architectures(), desc="architectures"):
        codec = load_codec(bundled=architecture).to(args.device)
        base = run(codec, x, "base", files=True, **refine_kwargs(args))
        refined = run(codec, x, "ssl", 2, 2.3, files=True, iterations=args.iterations, **refine_kwargs(args))
        rows.append({"architecture": architecture, "codec": codec.model_id, "lmbda": codec.lmbda,
                     "base_loss": base["loss"], "refined_loss": refined["loss"],
                     "loss_change_percent": 100 * (refined["loss"] / base["loss"] - 1),
                     "base_file_bpp": base["mean_file_bpp"], "refined_file_bpp": refined["mean_file_bpp"],
                     "refined_likelihood_bpp": refined["bpp"], "base_psnr": base["psnr"],
                     "refined_psnr": refined["psnr"], "seconds": refined["seconds"],
                     "seconds_per_iteration": refined["seconds"] / max(args.iterations, 1),
                     **{f"base_{k}": v for k, v in pillow_gaps(pillow, base).items()},
                     **{f"refined_{k}": v for k, v in pillow_gaps(pillow, refined).items()}})

    def plot(plt):
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for i, r in enumerate(rows):
            ax.annotate("", (r["refined_file_bpp"], r["refined_psnr"]), (r["base_file_bpp"], r["base_psnr"]),
                        arrowprops={"arrowstyle": "->", "color": f"C{i}"})
            ax.plot([r["base_file_bpp"]], [r["base_psnr"]], "o", color=f"C{i}", label=r["architecture"])
        ax.set_title(f"bundled models, base -> SSL ({args.iterations} iterations)", fontsize=9)
        return finish_axes(fig, ax, "file bpp", "PSNR (dB)", legend_size=8)

    write(args.out, "architectures", rows, meta, plot)


COMMANDS = {"methods": cmd_methods, "tau": cmd_tau, "ssl-shape": cmd_ssl_shape, "rd": cmd_rd,
            "multirate": cmd_multirate, "early-stop": cmd_early_stop, "budget": cmd_budget,
            "schedules": cmd_schedules, "target": cmd_target, "architectures": cmd_architectures}


MSE_ONLY = ("multirate", "target", "architectures")  # they compare against the bundled models' MSE lambdas


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("--images", nargs="+", default=list(EVAL_IMAGES))
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=500, help="the budget (early-stop and schedules: use 2000)")
    parser.add_argument("--long-iterations", type=int, default=2000, help="budget: the long budget to compare with")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6], help="target: file bpps")
    parser.add_argument("--check-every", type=int, default=10)
    parser.add_argument("--bundled", choices=bundled_architectures(), default=DEFAULT_BUNDLED_ARCHITECTURE)
    parser.add_argument("--model", choices=registry.architectures(), help="a CompressAI zoo architecture")
    parser.add_argument("--checkpoint", type=Path, help="an sgaplus checkpoint file")
    parser.add_argument("--quality", type=int, help="the model's quality (default: the middle bundled one)")
    parser.add_argument("--metric", choices=tuple(QUALITY), default="mse",
                        help="the distortion refined for and judged by (MS-SSIM: crops of 161 pixels or more)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.metric != "mse" and args.command in MSE_ONLY:
        sys.exit(f"{args.command} compares at MSE lambdas of the bundled models; --metric {args.metric} applies to "
                 f"{', '.join(c for c in COMMANDS if c not in MSE_ONLY)}")
    if args.metric == "ms-ssim" and 0 < args.crop < MS_SSIM_MIN_SIDE:
        sys.exit(f"--metric ms-ssim needs --crop {MS_SSIM_MIN_SIDE} or more (or 0, whole images)")
    x = load_images(args.images, args.crop).to(args.device)
    if args.command in ("multirate", "target", "architectures") and (args.model or args.checkpoint):
        sys.exit(f"{args.command} compares bundled models: use --bundled")
    if args.quality is None and not (args.model or args.checkpoint):
        args.quality = default_bundled_quality(args.bundled)
    meta = {"command": args.command, "codec": codec_on(args, args.quality).model_id, "images": args.images,
            "crop": args.crop, "iterations": args.iterations, "metric": args.metric,
            "device": device_name(args.device),
            "torch": str(torch.__version__), "date": time.strftime("%Y-%m-%d")}
    suffix = ("" if args.bundled == DEFAULT_BUNDLED_ARCHITECTURE else f"-{args.bundled}") if not (
        args.model or args.checkpoint) else f"-zoo-{args.model}" if args.model else f"-{args.checkpoint.stem}"
    meta["file_suffix"] = suffix
    COMMANDS[args.command](args, x, meta)


if __name__ == "__main__":
    main()
