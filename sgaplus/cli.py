"""The `sgaplus` command: refine images into bitstreams, decode bitstreams, and a one-minute demo."""
import argparse
import sys
import time
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from . import __version__, distributed, evaluation, evaluation_curves, evaluation_pairs, pipeline
from .codecs import registry, vbr
from .errors import SgaplusError, UsageError
from .files import loading
from .files.bitstream import MAX_PIXELS, decode
from .files.images import EVAL_IMAGES, load_shipped_image, read_rgb, write_png
from .files.loading import DEFAULT_BUNDLED_ARCHITECTURE, bundled_architectures, codec_for_id, load_codec
from .integration.run import run_program
from .refine import memory, presets
from .refine.distortion import DISTORTIONS, objective_for
from .refine.refiner import BASELINES, SGA_METHODS, LatentRefiner
from .refine.schedule import BUDGET_HOLD, PRESETS, TemperatureSchedule, budget_schedule, schedule_preset
from .refine.stopping import EarlyStopping

# What a user can cause: the package's own errors, and the OS's word on files the user named.
USER_ERRORS = (SgaplusError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
INTERRUPTED = 130  # the shell's status for a process ended by Ctrl-C
TARGET_MISSED = 3  # refine wrote every file, but some missed the target size asked for
BATCH_SIZE = 8  # the default largest batch of same-size images, for refine and evaluate alike


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _add_model_args(parser):
    group = parser.add_argument_group(f"model (default: the bundled {DEFAULT_BUNDLED_ARCHITECTURE})")
    group.add_argument("--bundled", choices=bundled_architectures(), metavar="ARCHITECTURE",
                       help=f"a bundled model, offline: {', '.join(bundled_architectures())}")
    group.add_argument("--model", choices=registry.architectures(), metavar="ARCHITECTURE",
                       help=f"a CompressAI image model: its zoo weights (downloaded), or with --checkpoint its "
                            f"weights as a CompressAI state dict: {', '.join(registry.architectures())}")
    group.add_argument("--quality", type=int, help="zoo quality, or bundled model quality (default: 3 for the zoo, "
                                                   "the middle one bundled)")
    group.add_argument("--checkpoint", type=Path, help="an sgaplus checkpoint file (see tools/train_base.py), or "
                                                       "with --model a CompressAI state dict")
    _add_model_class_args(group)
    rate = group.add_mutually_exclusive_group()
    rate.add_argument("--level", type=int, help="a variable-rate model's rate level (default: the middle one; with "
                                                "--lmbda or a target size, the nearest to it)")
    rate.add_argument("--gain", type=float, help="a variable-rate model's gain, between its levels' gains")


def _add_model_class_args(group):
    group.add_argument("--model-class", metavar="FILE.py:CLASS",
                       help="a CompressionModel class of your own (or package.module:CLASS), with its weights as "
                            "published in --checkpoint; refine needs --lmbda")
    group.add_argument("--model-args", metavar="JSON", help="--model-class's constructor keywords, a JSON object "
                                                            "(default: none; then the class's from_state_dict if any)")
    _add_model_calls_arg(group)


def _add_model_calls_arg(group):
    group.add_argument("--model-calls", metavar="FILE.py:NAME",
                       help="how to call a model whose forward, compress or decompress take more than CompressAI's "
                            "arguments: a sgaplus.ModelCalls in a file (or package.module:NAME); docs/codecs.md")


def uses_model_class(args, needs_lmbda):
    """Whether the options name a model class of the user's own; its options checked (it names the model alone)."""
    if args.model_class is None:
        if args.model_args is not None:
            raise UsageError("--model-args gives --model-class's constructor keywords; give --model-class too")
        if args.model_calls is not None:
            raise UsageError("--model-calls says how to call --model-class's model; give --model-class too")
        return False
    others = [f"--{name.replace('_', '-')}" for name in ("bundled", "model", "quality", "level", "gain")
              if getattr(args, name, None) is not None]
    if others:
        raise UsageError(f"--model-class and {', '.join(others)} both choose a model; give --model-class alone")
    if args.checkpoint is None:
        raise UsageError("--model-class needs its weights: --checkpoint FILE (a state dict, plain or under "
                         "'state_dict')")
    if needs_lmbda and args.lmbda is None:
        raise UsageError("--model-class needs --lmbda: sgaplus does not know the lambda this model was trained with")
    return True


def _add_evaluation_model_args(parser):
    group = parser.add_argument_group(f"rate points (default: every bundled {DEFAULT_BUNDLED_ARCHITECTURE} model)")
    group.add_argument("--bundled", choices=bundled_architectures(), metavar="ARCHITECTURE",
                       help="a bundled architecture: its qualities")
    group.add_argument("--model", choices=registry.architectures(), metavar="ARCHITECTURE",
                       help="a CompressAI image model: its zoo weights (downloaded), or with --checkpoint its weights")
    group.add_argument("--qualities", type=int, nargs="+", metavar="Q", help="the qualities (default: all)")
    group.add_argument("--levels", type=int, nargs="+", metavar="L",
                       help="a variable-rate model's levels (default: all)")
    group.add_argument("--checkpoint", type=Path, nargs="+", metavar="FILE",
                       help="one rate point per file: sgaplus checkpoints, or state dicts of --model or --model-class")
    _add_model_class_args(group)


def model_of(args):
    """load_codec's keywords for the model options (one source of weights at most)."""
    model, checkpoint = getattr(args, "model", None), getattr(args, "checkpoint", None)
    if args.bundled and (model or checkpoint):
        raise UsageError(f"--bundled and {'--model' if model else '--checkpoint'} both name a model; give one")
    return {"architecture": model, "checkpoint": checkpoint, "bundled": args.bundled or DEFAULT_BUNDLED_ARCHITECTURE,
            "level": getattr(args, "level", None), "gain": getattr(args, "gain", None),
            "metric": getattr(args, "metric", None) or "mse"}


def _add_refine_args(parser, lambdas=False, program=False):
    group = parser.add_argument_group("refinement")
    group.add_argument("--method", default="ssl", choices=SGA_METHODS + BASELINES, help="rounding relaxation")
    group.add_argument("--classes", type=int, default=2, choices=(2, 3), help="rounding classes")
    group.add_argument("--a", type=float, help="ssl shape (default 2.3 for 2 classes, 1.4 for 3)")
    group.add_argument("--r", type=float, help="three-class factor (default 0.98)")
    group.add_argument("--n", type=float, help="three-class power (default 1.5)")
    group.add_argument("--preset", choices=tuple(presets.PRESETS),
                       help=f"the settings the options below default to (default: {presets.DEFAULT_PRESET}; with "
                       "--resume, the earlier run's): " + "; ".join(
                           f"{name}: {preset.description}" for name, preset in presets.PRESETS.items()))
    group.add_argument("--iterations", type=int, help="refinement steps (default: the preset's)")
    group.add_argument("--lr", type=float, help="Adam learning rate (default: the preset's)")
    if lambdas:  # evaluate: one per --checkpoint file
        group.add_argument("--lmbda", type=float, nargs="+", help="one RD trade-off per --checkpoint file (default: "
                                                                   "each model's training lambda)")
    else:
        group.add_argument("--lmbda", type=float, help="RD trade-off (default: the model's training lambda)")
    group.add_argument("--metric", choices=tuple(DISTORTIONS),
                       help="the distortion the loss weighs: lambda * 255^2 * MSE + bpp, or lambda * (1 - MS-SSIM) + "
                            "bpp (default: what the model was trained for; with --model, the zoo's weights for it)")
    group.add_argument("--schedule", choices=tuple(PRESETS),
                       help="temperature schedule (default: the preset's): " + "; ".join(
                           f"{k}: {v}" for k, v in PRESETS.items()).replace("%", "%%"))  # argparse formats with %
    group.add_argument("--tau-max", type=float, help="largest temperature, for --schedule sga+ or budget "
                                                     "(default 1.0)")
    group.add_argument("--rate", type=float, help="temperature decay rate, for --schedule sga+ (default 1e-3)")
    group.add_argument("--early-stop", type=positive_int, metavar="PATIENCE",
                       help="stop an image after PATIENCE checks without a relative improvement of --min-delta "
                            "(default: the preset's)")
    group.add_argument("--no-early-stop", dest="early_stop", action="store_const", const=0,
                       help="refine every image for all its iterations")
    group.add_argument("--min-delta", type=float, help="relative improvement early stopping waits for (default: the "
                                                       "preset's)")
    if lambdas or program:  # run: the model's device, no target size
        _add_speed_args(group, device=not program)
        return
    target = group.add_mutually_exclusive_group()
    target.add_argument("--target-bpp", type=float, help="refine each image to a file of this many bits per pixel "
                                                         "(lambda is adjusted; default: off)")
    target.add_argument("--target-bytes", type=positive_int, help="refine each image to a file of this many bytes")
    _add_speed_args(group)


def _add_speed_args(group, device=True):
    group.add_argument("--check-every", type=int, help="steps between true-loss checks (default: the preset's)")
    group.add_argument("--seed", type=int, default=0, help="noise seed")
    if device:
        group.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                           help="cpu, cuda or cuda:N")
    group.add_argument("--autocast", choices=("bfloat16", "float16"), help="codec convolutions under autocast")
    group.add_argument("--channels-last", action="store_true", help="image and latents in channels_last format")
    group.add_argument("--compile", action=argparse.BooleanOptionalAction,
                       help="torch.compile the relaxed loss (default: the preset's; fast: when the run is long enough "
                            "for it to pay)")
    group.add_argument("--cuda-graphs", action="store_true",
                       help="compile the relaxed loss with mode='reduce-overhead' (CUDA graphs; CUDA only)")
    group.add_argument("--tf32", choices=("on", "off"),
                       help="float32 convolutions of the relaxed steps on TF32 tensor cores, or not "
                            "(default: torch's setting)")


def apply_preset(args, resumed=None):
    """Fill the options left unset from the preset; a rate target's run keeps no early stopping it did not ask
    for. compile may stay "auto" (resolved once the number of batches is known: resolve_compile). Without
    --preset: the default preset, or with --resume the preset recorded in `resumed` (an earlier run's settings
    file), so that a resumed run keeps its settings when the default changes."""
    if args.preset is None and getattr(args, "resume", False) and resumed is not None:
        recorded = pipeline.recorded_setting(resumed, "preset")
        args.preset = recorded if recorded in presets.PRESETS else None
    args.preset = args.preset or presets.DEFAULT_PRESET
    chosen = presets.preset(args.preset)
    target = getattr(args, "target_bpp", None) is not None or getattr(args, "target_bytes", None) is not None
    for name in ("iterations", "lr", "schedule", "min_delta", "check_every", "compile"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(chosen, name))
    if args.early_stop is None:
        args.early_stop = None if target else chosen.early_stop
    args.early_stop = args.early_stop or None  # --no-early-stop


def resolve_compile(args, pixels):
    """compile "auto": whether compiling pays for a run refining these pixels (of each batch or each image: every
    step refines all of them, and the compiled step is reused by every batch)."""
    if args.compile == "auto":
        args.compile = presets.compile_pays(args.iterations * sum(pixels))


def checked_device(text):
    """The --device value as torch names it, if this machine has it."""
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UsageError(f"unknown device {text!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {text}: CUDA is not available on this machine (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise UsageError(f"unsupported device {text!r}; use cpu, cuda or cuda:N")
    return str(device)


def _schedule(args):
    """The temperature schedule of the options: a preset, with --rate/--tau-max where it takes them."""
    if args.iterations == 0:
        return None  # no step: the unrefined latents are written, as --method base writes them
    if args.schedule == "sga+":
        return TemperatureSchedule(rate=1e-3 if args.rate is None else args.rate,
                                   tau_max=1.0 if args.tau_max is None else args.tau_max)
    if args.rate is not None:
        raise UsageError(f"--rate applies to --schedule sga+, not {args.schedule}")
    if args.schedule == "budget":
        return budget_schedule(args.iterations, tau_max=1.0 if args.tau_max is None else args.tau_max,
                               hold_fraction=BUDGET_HOLD)
    if args.tau_max is not None:
        raise UsageError(f"--tau-max applies to --schedule sga+ or budget, not {args.schedule}")
    return schedule_preset(args.schedule, args.iterations)


def _refiner(args, codec, metric="mse", lmbda=None, progress=True):
    """The LatentRefiner the options ask for; a bad value is the user's mistake, said in one line."""
    try:
        stopping = None if args.early_stop is None else EarlyStopping(args.early_stop, args.min_delta)
        return LatentRefiner(codec, args.method, args.classes, a=args.a, r=args.r, n=args.n,
                             iterations=args.iterations, lr=args.lr, lmbda=args.lmbda if lmbda is None else lmbda,
                             schedule=_schedule(args),
                             check_every=args.check_every, seed=args.seed, progress=progress, autocast=args.autocast,
                             channels_last=args.channels_last, compile=args.compile, cuda_graphs=args.cuda_graphs,
                             tf32=None if args.tf32 is None else args.tf32 == "on", early_stopping=stopping,
                             distortion=metric)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _evaluation_refiners(args, codec):
    """(unrefined, refined) LatentRefiners of one rate point of `evaluate`, at the point's lambda."""
    metric, lmbda = objective_for(codec, args.metric)
    lmbda = codec.lmbda if lmbda is None else lmbda
    if lmbda is None:
        raise UsageError(f"{codec.model_id} has no training lambda: give --lmbda, one per --checkpoint file")
    _warn_other_metric(metric, lmbda, codec)
    return (LatentRefiner(codec, "base", lmbda=lmbda, distortion=metric),
            _refiner(args, codec, metric, lmbda, progress=False))


def _check_size(metric, name, x):
    """UsageError (one line) unless the image is large enough for the metric."""
    try:
        DISTORTIONS[metric].check_size(x.shape[-2:], Path(name).name)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _warn_other_metric(metric, lmbda, codec):
    """A word when the model was trained for another metric than the one it is refined for."""
    if codec.metric not in (None, metric):
        chosen = "" if lmbda == codec.lmbda else f" with lambda {lmbda:.4g} (--lmbda chooses)"
        warnings.warn(f"{codec.model_id} was trained for {codec.metric}; refining it for {metric}{chosen}",
                      UserWarning, stacklevel=2)


def _refuse_overwrite(paths, force):
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise UsageError(f"would overwrite {', '.join(existing)} (pass --force to allow)")


def _output_folder(text):
    out = Path(text)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    return out


def cmd_refine(args):
    """Refine, write outputs; under torchrun each rank takes every world-th batch and rank 0 reports."""
    sources = [Path(p) for p in args.images]
    stems = [p.stem for p in sources]
    if len(set(stems)) != len(stems):
        raise UsageError("two input images share a file name; refine them into separate --out folders")
    out = _output_folder(args.out)
    apply_preset(args, out / "metrics.json")
    pipeline.refuse_replacing_inputs(out, sources)
    done = pipeline.finished_rows(out, sources, pipeline.run_settings(args)) if args.resume else {}
    todo = [p for p in sources if p.stem not in done]
    if not args.resume:
        _refuse_overwrite(pipeline.output_paths(out, stems) + pipeline.metrics_paths(out), args.force)
    images = [(str(p), read_rgb(p)) for p in todo]  # every input checked before any work
    rank, world, device = distributed.setup(checked_device(args.device))
    if (args.target_bpp or args.target_bytes) and args.early_stop:
        raise UsageError("--early-stop and a target size exclude each other (the target moves lambda)")
    codec = _codec(args, images, device)
    resolve_compile(args, [x.shape[-2] * x.shape[-1] for _, x in images])  # every image is refined once
    metric, lmbda = objective_for(codec, args.metric, args.lmbda)
    for name, x in images:  # before any work
        _check_size(metric, name, x)
    _warn_other_metric(metric, lmbda, codec)
    refiner = _refiner(args, codec, metric, lmbda)
    limits = memory.plan(refiner, sorted({tuple(x.shape[-2:]) for _, x in images}), args.batch_size, device)
    limits = distributed.smallest(limits, world)  # every rank cuts the same batches, whatever its free memory
    batches = pipeline.make_batches(images, args.batch_size, limits)
    out.mkdir(parents=True, exist_ok=True)
    order = {str(p): i for i, p in enumerate(sources)}
    rows = [(order[str(p)], done[p.stem]) for p in sources if p.stem in done]
    try:
        for number in range(rank, len(batches), world):
            batch = batches[number]
            target = None if target_of(args) is None else target_of(args)(batch[0][2].shape[-2:])
            for _, row, file in pipeline.refine_batch(batch, codec, refiner, device, args.seed, target):
                pipeline.report_target(row, target)
                pipeline.write_image_outputs(out, row, file)
                rows.append((order[row["image"]], row))
                if world == 1:  # what is finished is on disk for --resume
                    pipeline.write_metrics(out, pipeline.in_order(rows), codec, refiner, args, complete=False)
    except KeyboardInterrupt:
        print(f"sgaplus: interrupted: {len(rows)} of {len(sources)} images finished (kept in {out}); "
              f"run the same command with --resume to refine the rest", file=sys.stderr)
        return INTERRUPTED
    rows = distributed.gather(rows, world)
    distributed.finish(world)
    if rank == 0:
        rows = pipeline.in_order(rows)
        pipeline.write_metrics(out, rows, codec, refiner, args, complete=True)
        print(pipeline.table(rows))
        skipped = f", {len(done)} kept from the earlier run" if done else ""
        print(f"wrote {len(rows) - len(done)} bitstreams, reconstructions and metrics to {out}{skipped}"
              + (f" ({world} processes)" if world > 1 else ""))
        missed = pipeline.missed_targets(rows)
        if missed:
            print(f"sgaplus: {missed} (exit status {TARGET_MISSED})", file=sys.stderr)
            return TARGET_MISSED
    return 0


def _codec(args, images, device):
    """The codec the options name; with a target size or another lambda and no quality or level given, the bundled
    quality or the variable-rate level nearest to it. The options stay as given: --resume compares them."""
    if uses_model_class(args, needs_lmbda=True):
        return loading.load_model_class(args.model_class, args.checkpoint, args.model_args, args.lmbda,
                                        args.model_calls).to(device)
    quality, model = args.quality, model_of(args)
    if (args.target_bpp or args.target_bytes) and not (args.model or args.quality or args.checkpoint) and images:
        quality = pipeline.nearest_bundled_quality(images, target_of(args), device, model["bundled"])
        print(f"target size: starting from bundled model q{quality}, the nearest to the target", file=sys.stderr)
    codec = load_codec(quality=quality, **model).to(device)
    if codec.variable_rate and args.level is None and args.gain is None and images:
        codec = _nearest_level(args, codec, images, device, lambda level: load_codec(quality=quality,
                                                                                     **{**model, "level": level}))
    return codec


def _nearest_level(args, codec, images, device, load):
    """A variable-rate codec at the level nearest to what the options ask for: a target size's file rate, or the
    --lmbda's training lambda; else the codec as loaded (its middle level)."""
    if target_of(args) is not None:
        level = pipeline.nearest_level(images, target_of(args), device, load, codec.model.levels)
    elif args.lmbda is not None:
        level = vbr.nearest_level(codec.model, args.lmbda)
    else:
        return codec
    print(f"{codec.model_id.rsplit(':', 1)[0]}: starting from level {level}, the nearest to the "
          f"{'target' if target_of(args) is not None else 'lambda'}", file=sys.stderr)
    return load(level).to(device)


def target_of(args):
    """None, or a function (height, width) -> the file bpp the options ask for."""
    if args.target_bpp is not None:
        if not args.target_bpp > 0:
            raise UsageError(f"--target-bpp must be > 0, got {args.target_bpp}")
        return lambda size: args.target_bpp
    if args.target_bytes is not None:
        return lambda size: 8 * args.target_bytes / (size[0] * size[1])
    return None


def cmd_evaluate(args):
    """Every rate point x image: the unrefined and the refined file; the curves, BD metrics, table and plot. Under
    torchrun each rank takes every world-th (rate point, batch) unit and rank 0 writes the outputs."""
    sources = [Path(p) for p in args.images]
    if len({p.name for p in sources}) != len(sources):
        raise UsageError("two input images share a file name; evaluate them into separate --out folders")
    out = _output_folder(args.out)
    apply_preset(args, out / "pairs.json")
    uses_model_class(args, needs_lmbda=False)
    if args.model_class is not None and not args.lmbda:
        raise UsageError("--model-class needs --lmbda, one per --checkpoint file: its training lambdas are not known")
    if not args.resume:
        _refuse_overwrite([out / name for name in evaluation.OUTPUTS] + evaluation_pairs.rank_files(out)
                          + [out / "bitstreams"], args.force)
    images = [(p.name, read_rgb(p)) for p in sources]  # every input checked before any work
    for name, x in images:
        _check_size(args.metric or "mse", name, x)
    device = checked_device(args.device)
    points = evaluation.rate_points(args.bundled or DEFAULT_BUNDLED_ARCHITECTURE, args.model, args.qualities,
                                    args.levels, args.checkpoint or (), args.model_class, args.model_args, args.lmbda,
                                    args.metric or "mse", args.model_calls)
    if len(points) < 2:
        raise UsageError(f"evaluate draws a curve and its BD metrics: it needs two rate points or more, got "
                         f"{len(points)} ({points[0].label})")
    resolve_compile(args, [x.shape[-2] * x.shape[-1] for _, x in images])  # each point's refiner compiles anew
    settings = {**pipeline.run_settings(args), "points": [p.label for p in points]}
    rank, world, device = distributed.setup(device)
    job = evaluation.Evaluation(images, points, lambda codec: _evaluation_refiners(args, codec), out, device,
                                settings, _model_name(args), args.batch_size)
    out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(points) * len(images), desc="evaluate", unit="image", disable=rank > 0) as bar:
        try:
            written = evaluation.evaluate(job, args.resume, bar, rank, world)
        except KeyboardInterrupt:
            print(f"sgaplus: interrupted: the finished pairs are kept in {out}; run the same command with --resume",
                  file=sys.stderr)
            return INTERRUPTED
    distributed.finish(world)
    if rank == 0:
        _report_evaluation(*written, out, world)
    return 0


def _report_evaluation(curves, bd, out, world):
    print(evaluation_curves.table(curves))
    print(f"BD-rate of refined against base: {_percent(bd.get('bd_rate_percent_psnr'))} (PSNR)"
          + (f", {_percent(bd['bd_rate_percent_ms_ssim'])} (MS-SSIM)" if "bd_rate_percent_ms_ssim" in bd else ""))
    print(f"wrote base.json, refined.json (CompressAI's format: python -m compressai.utils.plot -f {out}/base.json "
          f"{out}/refined.json), bd.json, images.csv and rd.png to {out}"
          + (f" ({world} processes)" if world > 1 else ""))


def cmd_run(args):
    """Run a Python program with every CompressionModel's compress refined (sgaplus/integration/run.py)."""
    if bool(args.module) == bool(args.script):
        raise UsageError("name one program to run: -m MODULE [ARGS] or SCRIPT.py [ARGS]")
    apply_preset(args)
    resolve_compile(args, [])  # eager unless --compile: the images are not known before they are compressed
    program, *arguments = args.module or args.script
    return run_program(program, arguments, bool(args.module), args.lmbda,
                       lambda codec: _refiner(args, codec, *objective_for(codec, args.metric, args.lmbda)),
                       args.model_calls)


def _percent(value):
    return "undefined" if value is None else f"{value:+.2f}%"


def _model_name(args):
    if args.model_class:
        return args.model_class.rpartition(":")[2]
    return args.model or (args.checkpoint[0].stem if args.checkpoint else args.bundled or DEFAULT_BUNDLED_ARCHITECTURE)


def cmd_decode(args):
    target = Path(args.out)
    if target.is_dir():
        raise UsageError(f"--out {target} is a folder; name the PNG file to write")
    if not target.parent.is_dir():
        raise UsageError(f"--out {target}: the folder {target.parent} does not exist")
    _refuse_overwrite([target], args.force)
    uses_model_class(args, needs_lmbda=False)  # its options checked before the file is read
    data = Path(args.file).read_bytes()
    x_hat, model_id = decode(data, lambda model_id: codec_for_id(model_id, args.checkpoint, args.model_class,
                                                                   args.model_args, args.model_calls), args.max_pixels)
    write_png(target, x_hat)
    print(f"decoded {args.file} ({model_id}, {x_hat.shape[-1]}x{x_hat.shape[-2]}) to {target}")
    return 0


def cmd_demo(args):
    """Refine a crop of a held-out sample image with the bundled model and print base vs refined."""
    image = load_shipped_image(args.image)
    height, width = image.shape[-2:]
    if args.crop > min(height, width):
        raise UsageError(f"--crop {args.crop} is larger than {args.image} ({width}x{height})")
    if target_of(args) is not None:
        raise UsageError("demo refines at the model's own lambda; a target size is refine's: sgaplus refine IMAGE "
                         "--target-bpp X")
    x = image[:, :args.crop, :args.crop].unsqueeze(0)
    device = checked_device(args.device)
    apply_preset(args)
    resolve_compile(args, [args.crop ** 2])
    codec = load_codec(quality=args.quality, **model_of(args)).to(device)
    refiner = _refiner(args, codec)
    start = time.time()
    [(_, row, file)] = pipeline.refine_batch([(0, args.image, x)], codec, refiner, device, args.seed)
    print(f"{args.image} {args.crop}x{args.crop} crop, model {codec.model_id} (lambda {refiner.lmbda}), "
          f"{args.method} for {args.iterations} iterations in {time.time() - start:.1f} s on {device}")
    print(pipeline.table([row]))
    gain = 100 * (row["base"]["loss"] - row["refined"]["loss"]) / row["base"]["loss"]
    print(f"true RD loss {row['base']['loss']:.4f} -> {row['refined']['loss']:.4f} ({gain:.1f}% lower); "
          f"bitstream {len(file.stream)} bytes, decoded: {row['file']['psnr']:.3f} dB, loss {row['file']['loss']:.4f}")
    return 0


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, unless it has none (None) or is an off switch."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser():
    parser = argparse.ArgumentParser(prog="sgaplus", description="SGA+ latent refinement for learned image codecs")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    formatter = _DefaultsHelp
    refine = sub.add_parser("refine", help="refine images and write bitstreams, reconstructions and metrics",
                            formatter_class=formatter)
    refine.add_argument("images", nargs="+", metavar="IMAGE")
    refine.add_argument("--out", default="sgaplus_out", help="output folder")
    refine.add_argument("--force", action="store_true", help="overwrite existing outputs (never an input image)")
    refine.add_argument("--resume", action="store_true",
                        help="continue an interrupted run in the same --out: keep the images it finished")
    refine.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE, help="same-size images refined together")
    _add_model_args(refine)
    _add_refine_args(refine)
    refine.set_defaults(func=cmd_refine)
    dec = sub.add_parser("decode", help="decode a bitstream to a PNG", formatter_class=formatter)
    dec.add_argument("file", metavar="FILE.bin")
    dec.add_argument("--out", required=True, metavar="IMAGE.png", help="the PNG to write")
    dec.add_argument("--checkpoint", type=Path, help="the checkpoint the bitstream was made with, if not bundled")
    _add_model_class_args(dec)
    dec.add_argument("--force", action="store_true", help="overwrite an existing PNG")
    dec.add_argument("--max-pixels", type=positive_int, default=MAX_PIXELS,
                     help="refuse bitstreams of larger images (a crafted header must not exhaust memory)")
    dec.set_defaults(func=cmd_decode)
    evaluate = sub.add_parser("evaluate", help="the RD curve of images with and without refinement, in "
                                               "CompressAI's format", formatter_class=formatter)
    evaluate.add_argument("images", nargs="+", metavar="IMAGE")
    evaluate.add_argument("--out", required=True, help="output folder")
    evaluate.add_argument("--force", action="store_true", help="overwrite an earlier evaluation's outputs")
    evaluate.add_argument("--resume", action="store_true",
                          help="continue an interrupted evaluation in the same --out: keep its finished pairs")
    evaluate.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE,
                          help="same-size images of a rate point refined together")
    _add_evaluation_model_args(evaluate)
    _add_refine_args(evaluate, lambdas=True)
    evaluate.set_defaults(func=cmd_evaluate)
    demo = sub.add_parser("demo", help="refine a shipped sample image with the bundled model (under a minute on a CPU)",
                          formatter_class=formatter)
    demo.add_argument("--image", default=EVAL_IMAGES[0], choices=EVAL_IMAGES, help="held-out sample image")
    demo.add_argument("--crop", type=positive_int, default=256, help="side of the top-left square crop")
    _add_refine_args(demo)
    demo.add_argument("--bundled", choices=bundled_architectures(), metavar="ARCHITECTURE",
                      help=f"the bundled model's architecture: {', '.join(bundled_architectures())} "
                           f"(default: {DEFAULT_BUNDLED_ARCHITECTURE})")
    demo.add_argument("--quality", type=int, help="bundled model quality (default: middle)")
    demo.set_defaults(func=cmd_demo)
    run = sub.add_parser("run", help="run a Python program (SCRIPT.py or -m MODULE) with every CompressionModel's "
                                     "compress refined", formatter_class=formatter,
                         usage="sgaplus run [options] (-m MODULE | SCRIPT.py) [ARGS ...]")
    _add_refine_args(run, program=True)
    _add_model_calls_arg(run)
    run.add_argument("-m", dest="module", nargs=argparse.REMAINDER, metavar="MODULE [ARGS]",
                     help="run a module as python -m does; what follows are its arguments")
    run.add_argument("script", nargs=argparse.REMAINDER, metavar="SCRIPT.py [ARGS]", help="or a script")
    run.set_defaults(func=cmd_run)
    return parser


def _warn_in_one_line(message, category, filename, lineno, file=None, line=None):
    print(f"sgaplus: warning: {message}", file=sys.stderr)


def main(argv=None):
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")  # raised inside compressai
    args = build_parser().parse_args(argv)
    show = warnings.showwarning
    warnings.showwarning = _warn_in_one_line
    try:
        return args.func(args)
    except USER_ERRORS as error:
        print(f"sgaplus: error: {error}", file=sys.stderr)
        return getattr(error, "exit_status", 1)
    except KeyboardInterrupt:
        print("sgaplus: interrupted", file=sys.stderr)
        return INTERRUPTED
    finally:
        warnings.showwarning = show


if __name__ == "__main__":
    sys.exit(main())
